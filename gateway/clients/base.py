"""What every upstream client shares: pooled connections, the caller's forwarded identity, and how
upstream answers (problem+json, timeouts, refused connections) become gateway errors.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from gateway.errors import PublicError

# A slow upstream should fail one field quickly, not hold the whole GraphQL response hostage.
TIMEOUT = httpx.Timeout(10.0, connect=2.0)
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)

log = logging.getLogger("voronka.gateway.upstream")

# A query parameter's value; a list repeats the parameter (`?status=new&status=working`).
QueryValue = str | int | bool | list[str]


@dataclass(frozen=True, slots=True)
class Caller:
    """Whom the gateway calls on behalf of: their own token goes upstream, so each service authorises them."""

    token: str
    request_id: str | None
    # The gateway's span of the caller's trace: the services continue it, and so do the events they publish.
    traceparent: str | None = None

    def headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"}
        if self.request_id:
            headers["X-Request-ID"] = self.request_id
        if self.traceparent:
            headers["traceparent"] = self.traceparent
        return headers


class Record(BaseModel):
    """Base of the upstream answers' models: fields the gateway does not know yet are ignored, not refused."""

    model_config = ConfigDict(extra="ignore", frozen=True)


def if_match(version: int | None) -> dict[str, str]:
    """The If-Match header naming `version` (the record's ETag), or none: change whatever version is current."""
    return {"If-Match": f'"{version}"'} if version is not None else {}


def idempotency(key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": key} if key is not None else {}


class FieldProblem(BaseModel):
    """One entry of a problem+json `errors` list: which request field was wrong and why."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    field: str
    code: str = "invalid"
    message: str = "Invalid value."


class Problem(BaseModel):
    """An RFC 9457 problem+json body as the Voronka services send it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    type: str = "about:blank"
    title: str = ""
    status: int | None = None
    detail: str = ""
    errors: list[FieldProblem] = []

    @classmethod
    def from_response(cls, response: httpx.Response) -> Problem | None:
        try:
            return cls.model_validate_json(response.content)
        except ValidationError:
            return None


class UpstreamUnavailable(PublicError):
    """The service could not be reached or said it is overloaded; the client may retry."""

    def __init__(self, service: str) -> None:
        super().__init__(f"{service} service unavailable")
        self.service = service


# The refusals a client can act on: not allowed, no such record, a conflict with the record's state, a stale
# If-Match, invalid fields. With a problem+json body they become `UpstreamRejected`; any other status does not.
REFUSALS = frozenset({403, 404, 409, 412, 422})


class UpstreamRejected(Exception):
    """A refusal (403, 404, 409, 412 or 422) with the service's reasons. Resolvers that expect it turn it into
    `userErrors` (mutations) or a null or a public error (queries).

    Not public on purpose: a refusal that no resolver expects means the gateway sent something wrong.
    """

    def __init__(self, service: str, status: int, problem: Problem) -> None:
        super().__init__(f"{service} refused the request ({status}): {problem.detail}")
        self.service = service
        self.status = status
        # The problem type's last segment, e.g. "validation-error", "idempotency-key-in-progress".
        self.code = problem.type.rstrip("/").rsplit("/", 1)[-1]
        self.detail = problem.detail or problem.title or "The request has invalid fields."
        self.errors = problem.errors


class UpstreamError(Exception):
    """An answer the contract does not allow here. Its message is for the logs only (it gets masked)."""

    def __init__(self, service: str, method: str, path: str, response: httpx.Response) -> None:
        problem = Problem.from_response(response)
        what = f"{problem.title}: {problem.detail}" if problem else response.text[:200]
        super().__init__(f"{service} answered {method} {path} with {response.status_code} ({what})")
        self.service = service
        self.status = response.status_code


def open_pool(
    base_url: str, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """One long-lived client per service, so requests reuse keep-alive connections instead of dialling."""
    return httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT, limits=LIMITS, transport=transport)


class ServiceClient:
    """Base for the per-service clients: one instance per GraphQL request, bound to its caller."""

    service: ClassVar[str]

    def __init__(self, http: httpx.AsyncClient, caller: Caller) -> None:
        self._http = http
        self._caller = caller

    async def _send(
        self,
        method: str,
        path: str,
        *,
        ok: Collection[int],
        params: Mapping[str, QueryValue] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """The response if its status is one of `ok`; otherwise the matching gateway error is raised."""
        sent = self._caller.headers()
        if headers:
            sent.update(headers)
        try:
            response = await self._http.request(method, path, params=params, json=json, headers=sent)
        except httpx.TransportError as exc:
            # Refused connections, DNS failures and timeouts all look the same to the client: try later.
            log.warning(
                "upstream unreachable",
                extra={"upstream": self.service, "method": method, "path": path, "error": repr(exc),
                       "request_id": self._caller.request_id},
            )
            raise UpstreamUnavailable(self.service) from exc
        status = response.status_code
        if status in ok:
            return response
        if status in REFUSALS:
            problem = Problem.from_response(response)
            if problem is not None:
                raise UpstreamRejected(self.service, status, problem)
        if status in (502, 503, 504):
            log.warning(
                "upstream unavailable",
                extra={"upstream": self.service, "method": method, "path": path, "status": status,
                       "request_id": self._caller.request_id},
            )
            raise UpstreamUnavailable(self.service)
        raise UpstreamError(self.service, method, path, response)
