"""What every service built with create_service_app answers at its edges: unexpected errors, production
settings, and an identity provider that is down or overreaching."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import APIRouter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.common.auth import service_token
from services.common.observability import JsonFormatter
from services.common.service_app import create_service_app
from services.common.settings import get_settings
from services.common.testing import ServedApp, auth_headers, eventually, free_port

boom = APIRouter()


@boom.get("/v1/boom")
async def explode() -> None:
    raise RuntimeError("connection string postgresql://admin:hunter2@db leaked into an error")


class CapturedLog(logging.Handler):
    """Formats records as the services' JSON log lines do, while the request is still being served."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter("test"))
        self.entries: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.entries.append(json.loads(self.format(record)))


@pytest.fixture
async def leads_app(database_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ServedApp]:
    """A bare service (the kernel's endpoints plus /v1/boom) on the test's database, over real HTTP."""
    get_settings.cache_clear()
    served = await ServedApp(create_service_app("leads", title="Leads", routers=[boom]), free_port()).start()
    yield served
    await served.stop()


@pytest.fixture
def no_dispatcher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VORONKA_DISPATCHER_ENABLED", "false")


async def test_an_unexpected_error_is_a_masked_500_that_quotes_its_request_id(no_dispatcher, leads_app):
    captured = CapturedLog()
    logging.getLogger("voronka.errors").addHandler(captured)
    try:
        async with httpx.AsyncClient(base_url=leads_app.url) as client:
            ours = await client.get("/v1/boom")
            theirs = await client.get("/v1/boom", headers={"X-Request-ID": "ticket-4711"})
    finally:
        logging.getLogger("voronka.errors").removeHandler(captured)

    assert ours.status_code == theirs.status_code == 500
    assert ours.headers["content-type"] == "application/problem+json"
    body = ours.json()
    assert body["type"] == "https://voronka.dev/problems/internal-error"
    assert body["request_id"] == ours.headers["x-request-id"]
    assert theirs.json()["request_id"] == theirs.headers["x-request-id"] == "ticket-4711"
    assert "hunter2" not in ours.text
    assert "RuntimeError" not in ours.text
    # The operator finds the exception by the id the client quotes.
    logged = {entry["request_id"]: entry for entry in captured.entries if entry["message"] == "unhandled error"}
    assert set(logged) == {body["request_id"], "ticket-4711"}
    assert "hunter2" in str(logged["ticket-4711"]["exception"])


async def test_production_serves_no_api_description(no_dispatcher, database_url, monkeypatch):
    monkeypatch.setenv("VORONKA_ENV", "production")
    monkeypatch.setenv("VORONKA_JWT_SECRET", "a-real-secret-from-the-vault-0123456789")
    monkeypatch.setenv("VORONKA_EVENTS_SECRET", "whsec_c2VjcmV0LXNlY3JldA==")
    # Its own connection URL, so no development role password is involved.
    monkeypatch.setenv("VORONKA_LEADS_DATABASE_URL", database_url)
    get_settings.cache_clear()
    served = await ServedApp(create_service_app("leads", title="Leads", routers=[]), free_port()).start()
    try:
        async with httpx.AsyncClient(base_url=served.url) as client:
            answers = {path: (await client.get(path)).status_code for path in ("/openapi.json", "/docs", "/redoc")}
            healthy = await client.get("/healthz")
    finally:
        await served.stop()
    assert answers == {"/openapi.json": 404, "/docs": 404, "/redoc": 404}
    assert healthy.status_code == 200


async def test_development_serves_the_api_description(no_dispatcher, leads_app):
    async with httpx.AsyncClient(base_url=leads_app.url) as client:
        assert (await client.get("/openapi.json")).status_code == 200


def person_claims(workspace: uuid.UUID, role: str) -> dict[str, object]:
    return {"iss": "voronka", "aud": "voronka", "sub": str(uuid.uuid4()), "workspace_id": str(workspace),
            "role": role, "exp": int(time.time()) + 300}


async def test_an_unreachable_identity_provider_is_a_503_to_retry_not_a_bad_token(
    no_dispatcher, database_url, monkeypatch
):
    monkeypatch.setenv("VORONKA_JWT_ALGORITHM", "RS256")
    monkeypatch.setenv("VORONKA_JWKS_URL", f"http://127.0.0.1:{free_port()}/jwks.json")  # nothing listens
    get_settings.cache_clear()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(person_claims(uuid.uuid4(), "admin"), key, algorithm="RS256", headers={"kid": "k1"})
    served = await ServedApp(create_service_app("leads", title="Leads", routers=[]), free_port()).start()
    try:
        async with httpx.AsyncClient(base_url=served.url, headers=auth_headers(token)) as client:
            first = await client.get("/events")
            again = await client.get("/events")  # answered at once, without waiting on the provider again
            # Service tokens never need the identity provider.
            service = await client.get("/events", headers=auth_headers(service_token(get_settings())))
    finally:
        await served.stop()
    for response in (first, again):
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"] == "5"
        assert response.json()["title"] == "Identity provider unreachable"
        assert response.json()["request_id"] == response.headers["x-request-id"]
    assert service.status_code == 200


async def test_only_a_voronka_service_token_reads_every_workspace_s_event_log(database_url, admin_db, monkeypatch):
    """In RS256 mode the services' own tokens still work, and a token the identity provider signed with
    role=service reads nothing."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"kid": "k1", "use": "sig"}

    async def jwks(request: Request) -> JSONResponse:
        return JSONResponse({"keys": [jwk]})

    provider = await ServedApp(Starlette(routes=[Route("/jwks.json", jwks)]), free_port()).start()
    monkeypatch.setenv("VORONKA_JWT_ALGORITHM", "RS256")
    monkeypatch.setenv("VORONKA_JWKS_URL", f"{provider.url}/jwks.json")
    get_settings.cache_clear()
    served = await ServedApp(create_service_app("leads", title="Leads", routers=[]), free_port()).start()
    workspaces = [uuid.uuid4(), uuid.uuid4()]
    await admin_db.execute(
        """
        INSERT INTO leads.outbox (workspace_id, id, type, subject, event)
        SELECT w, gen_random_uuid(), 'voronka.test.happened.v1', 's', '{}'::jsonb FROM unnest($1::uuid[]) w
        """,
        workspaces,
    )
    await admin_db.execute("SELECT pg_notify('leads_outbox', '')")

    def signed_by_provider(role: str) -> str:
        return jwt.encode(person_claims(workspaces[0], role), key, algorithm="RS256", headers={"kid": "k1"})

    try:
        async with httpx.AsyncClient(base_url=served.url) as client:
            ours = await eventually(
                lambda: client.get("/events", headers=auth_headers(service_token(get_settings()))),
                lambda r: r.status_code == 200 and len(r.json()["events"]) == 2,
            )
            overreaching = await client.get("/events", headers=auth_headers(signed_by_provider("service")))
            admin = await client.get("/events", headers=auth_headers(signed_by_provider("admin")))
    finally:
        await served.stop()
        await provider.stop()
    assert overreaching.status_code == 401
    assert "service" in overreaching.json()["detail"]
    assert len(ours.json()["events"]) == 2
    assert admin.status_code == 200
    assert len(admin.json()["events"]) == 1


async def test_workers_named_in_workers_disabled_do_not_start_and_the_others_do(
    no_dispatcher, database_url, monkeypatch
):
    from services.common.workers import QueueWorker

    class Kept(QueueWorker):
        channel = "test_kept"

        async def step(self) -> int:
            return 0

    class Skipped(Kept):
        channel = "test_skipped"

    monkeypatch.setenv("VORONKA_WORKERS_DISABLED", '["Skipped"]')
    get_settings.cache_clear()
    app = create_service_app("leads", title="Leads", routers=[], workers=[Kept, Skipped])
    served = await ServedApp(app, free_port()).start()
    try:
        assert [type(worker).__name__ for worker in app.state.workers] == ["Kept"]
    finally:
        await served.stop()
        get_settings.cache_clear()
