"""Gateway tests run the app in-process over httpx.ASGITransport; the leads and reporting services are
an in-memory fake that speaks their REST contract through httpx.MockTransport.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway.app import create_app
from services.common.auth import Principal, Role, TokenVerifier, issue_token
from services.common.ids import new_id
from services.common.problems import Unauthorized
from services.common.settings import Settings, get_settings

WORKSPACE_ID = uuid.UUID("0193a1f0-0000-7000-8000-000000000001")
OTHER_WORKSPACE_ID = uuid.UUID("0193a1f0-0000-7000-8000-000000000002")
USER_ID = uuid.UUID("0193a1f0-0000-7000-8000-0000000000aa")


def problem(
    status: int, title: str, detail: str, errors: list[dict[str, str]] | None = None
) -> httpx.Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


@dataclass
class FakeUpstreams:
    """The leads and reporting services as the gateway sees them, with a log of every call made."""

    verifier: TokenVerifier
    leads: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    calls: list[httpx.Request] = field(default_factory=list)
    leads_down: bool = False
    reporting_down: bool = False
    leads_fail_with: int | None = None

    def add_lead(self, workspace_id: uuid.UUID = WORKSPACE_ID, **values: Any) -> dict[str, Any]:
        now = datetime.now(UTC).isoformat()
        lead = {
            "id": str(new_id()),
            "workspace_id": str(workspace_id),
            "name": values.get("name", "Ada Lovelace"),
            "email": values.get("email"),
            "phone": values.get("phone"),
            "company": values.get("company"),
            "position": None,
            "notes": None,
            "tags": [],
            "custom": {},
            "source": values.get("source"),
            "source_id": None,
            "channel": None,
            "utm": {},
            "owner_id": None,
            "status": "new",
            "disqualification_reason": None,
            "merged_into_id": None,
            "created_by": str(USER_ID),
            "created_at": now,
            "updated_at": now,
            "status_changed_at": now,
            "version": 1,
        }
        self.leads.append(lead)
        return lead

    def calls_to(self, method: str, path: str) -> list[httpx.Request]:
        return [c for c in self.calls if c.method == method and c.url.path == path]

    async def _principal(self, request: httpx.Request) -> Principal | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        try:
            return await self.verifier.verify(token)
        except Unauthorized:
            return None

    def _visible(self, principal: Principal) -> list[dict[str, Any]]:
        return [lead for lead in self.leads if lead["workspace_id"] == str(principal.workspace_id)]

    async def leads_service(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if self.leads_down:
            raise httpx.ConnectError("connection refused", request=request)
        if self.leads_fail_with:
            return problem(self.leads_fail_with, "Internal error", "db pool exhausted at 10.0.3.7")
        principal = await self._principal(request)
        if principal is None:
            return problem(401, "Not authenticated", "The token is not valid.")
        visible = self._visible(principal)
        path = request.url.path
        if request.method == "POST" and path == "/v1/leads":
            return self._create(request, principal)
        if request.method == "GET" and path == "/v1/leads":
            params = request.url.params
            if "ids" in params:
                wanted = set(params["ids"].split(","))
                items = [lead for lead in visible if lead["id"] in wanted]
                return httpx.Response(200, json={"items": items, "next_cursor": None})
            return self._page(visible, int(params.get("limit", "50")), params.get("cursor"))
        if request.method == "GET" and path.startswith("/v1/leads/"):
            found = [lead for lead in visible if lead["id"] == path.removeprefix("/v1/leads/")]
            if found:
                return httpx.Response(200, json=found[0])
            return problem(404, "Not found", "No such lead.")
        return problem(404, "Not found", f"No route {path}.")

    def _create(self, request: httpx.Request, principal: Principal) -> httpx.Response:
        body = json.loads(request.content)
        errors = []
        name = body.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 200:
            errors.append({"field": "name", "code": "string_too_short", "message": "Give the lead a name."})
        email = body.get("email")
        if email is not None and "@" not in email:
            errors.append({"field": "email", "code": "value_error", "message": "Not an email address."})
        if errors:
            fields = ", ".join(e["field"] for e in errors)
            return problem(422, "The request has invalid fields", f"Invalid: {fields}.", errors)
        lead = self.add_lead(principal.workspace_id, **body)
        return httpx.Response(201, json=lead)

    def _page(self, visible: list[dict[str, Any]], limit: int, cursor: str | None) -> httpx.Response:
        if not 1 <= limit <= 200:
            return problem(422, "The request has invalid fields", "Invalid: limit.",
                           [{"field": "limit", "code": "range", "message": "1 to 200."}])
        newest_first = list(reversed(visible))
        start = 0
        if cursor is not None:
            try:
                last_id = base64.urlsafe_b64decode(cursor).decode()
                start = next(i for i, lead in enumerate(newest_first) if lead["id"] == last_id) + 1
            except (ValueError, StopIteration):
                return problem(422, "The request has invalid fields", "Invalid: cursor.",
                               [{"field": "cursor", "code": "invalid", "message": "Not a cursor."}])
        items = newest_first[start : start + limit]
        more = start + limit < len(newest_first)
        next_cursor = base64.urlsafe_b64encode(items[-1]["id"].encode()).decode() if more and items else None
        return httpx.Response(200, json={"items": items, "next_cursor": next_cursor})

    async def reporting_service(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if self.reporting_down:
            raise httpx.ConnectError("connection refused", request=request)
        principal = await self._principal(request)
        if principal is None:
            return problem(401, "Not authenticated", "The token is not valid.")
        if request.method == "GET" and request.url.path == "/v1/stats/leads":
            counts: dict[str, int] = {}
            for lead in self._visible(principal):
                source = lead["source"] or "unknown"
                counts[source] = counts.get(source, 0) + 1
            by_source = [{"source": s, "count": c} for s, c in sorted(counts.items())]
            return httpx.Response(200, json={"total": sum(counts.values()), "by_source": by_source})
        return problem(404, "Not found", f"No route {request.url.path}.")


@pytest.fixture
def settings() -> Settings:
    return get_settings()


@pytest.fixture
def token(settings: Settings) -> str:
    return issue_token(settings, workspace_id=WORKSPACE_ID, user_id=USER_ID, role=Role.head_of_sales)


@pytest.fixture
def upstreams(settings: Settings) -> FakeUpstreams:
    return FakeUpstreams(verifier=TokenVerifier(settings))


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The app's lifespan points the root logger at stdout as JSON; other tests should not inherit that."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    access = logging.getLogger("uvicorn.access").disabled
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("uvicorn.access").disabled = access


@pytest.fixture
async def app(settings: Settings, upstreams: FakeUpstreams, restore_logging: None) -> AsyncIterator[FastAPI]:
    app = create_app(
        settings,
        transports={
            "leads": httpx.MockTransport(upstreams.leads_service),
            "reporting": httpx.MockTransport(upstreams.reporting_service),
        },
    )
    # ASGITransport does not run the lifespan, and the lifespan is what opens the upstream pools.
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
        yield client


@pytest.fixture
async def client(app: FastAPI, token: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://gateway",
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        yield client


GraphQL = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def graphql(client: httpx.AsyncClient) -> GraphQL:
    """POSTs an operation as the signed-in user and returns the body (HTTP 200 even when it has errors)."""

    async def run(query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await client.post("/graphql", json={"query": query, "variables": variables or {}})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    return run


# ---- the gateway over the real leads service ------------------------------------------------------------


@dataclass
class LiveGateway:
    """The gateway app in-process, calling the real leads service (served over HTTP on the test's database)."""

    client: httpx.AsyncClient
    leads_url: str

    async def graphql(self, token: str, query: str, **variables: Any) -> dict[str, Any]:
        """The operation's `data`, asserting there were no GraphQL errors."""
        body = await self.run(token, query, **variables)
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    async def run(self, token: str, query: str, **variables: Any) -> dict[str, Any]:
        """The whole response body, errors included."""
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": variables}, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
async def live_gateway(stack: Any, restore_logging: None) -> AsyncIterator[LiveGateway]:
    await stack.start("leads")
    # After `stack` pointed VORONKA_LEADS_URL at the service it started.
    app = create_app(get_settings())
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway", timeout=10
    ) as client:
        yield LiveGateway(client=client, leads_url=stack.url("leads"))


@pytest.fixture
async def live_gateway_with_deals(stack: Any, restore_logging: None) -> AsyncIterator[LiveGateway]:
    """The same, with the real deals service too (pipelines, deals)."""
    await stack.start("leads", "deals")
    app = create_app(get_settings())
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway", timeout=10
    ) as client:
        yield LiveGateway(client=client, leads_url=stack.url("leads"))
