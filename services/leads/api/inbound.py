"""HTTP: inbound webhooks and their quarantine.

POST /v1/inbound/{source_id} is called by marketing tools and web forms, not by people: it is authenticated by
the source (a Standard Webhooks signature or the source's token), stores the raw request and answers 202; the
InboundWorker maps and validates it afterwards. /v1/inbound-requests lists what came in, with the reason for
each quarantined request, and sends requests back to the worker once the source's mapping is fixed.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, Field

from services.common.auth import CurrentPrincipal, Principal, Role
from services.common.bodies import read_bounded_body
from services.common.cursors import decode_cursor, encode_cursor
from services.common.db import DB, ReadConn
from services.common.problems import Conflict, Forbidden, InvalidField, NotFound, UnsupportedMediaType
from services.common.responses import model_response
from services.common.settings import get_settings
from services.common.workers import notify
from services.leads.inbound_worker import InboundWorker
from services.leads.sources import (
    KEPT_HEADERS,
    NOT_ACCEPTED,
    InboundRequestRepository,
    InboundUnauthorized,
    SourceRepository,
    check_timestamp,
    signature_matches,
    source_for_inbound,
    store_request,
    token_matches,
)

router = APIRouter(tags=["inbound"])

# JSON (with any +json structured suffix) and what a plain HTML form sends. multipart/form-data is refused:
# forms send it only when they upload files, which a lead does not carry.
FORM = "application/x-www-form-urlencoded"
MAX_MESSAGE_ID = 255


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _supported(media_type: str) -> bool:
    return media_type in ("application/json", "text/json", FORM) or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _message_id(value: str, header: str) -> str:
    if not (0 < len(value) <= MAX_MESSAGE_ID and value.isascii() and value.isprintable()):
        raise InvalidField(header, f"{header} must be 1 to {MAX_MESSAGE_ID} printable ASCII characters.")
    return value


def _given_tokens(request: Request, query_token: str | None) -> tuple[str, ...]:
    """Every place a token may come in; any one matching is enough (a proxy may add its own Authorization)."""
    given = [request.headers.get("x-voronka-token"), query_token]
    scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        given.append(bearer.strip())
    return tuple(token for token in given if token)


@dataclass(frozen=True)
class _Claim:
    """How the sender says it speaks for the source, checked once the source is known; and its message id."""

    mode: str  # signature | token
    message_id: str
    sent_at: int = 0
    signatures: str = ""
    tokens: tuple[str, ...] = ()

    def proven_by(self, source: asyncpg.Record, body: bytes) -> bool:
        if self.mode == "signature":
            return signature_matches(source["secret"], self.message_id, self.sent_at, body, self.signatures)
        return any(token_matches(source["token_hash"], token) for token in self.tokens)


def _claim(request: Request, query_token: str | None, tolerance_seconds: int) -> _Claim:
    signatures = request.headers.get("webhook-signature")
    if signatures is not None:
        message_id = request.headers.get("webhook-id", "")
        stamp = request.headers.get("webhook-timestamp", "")
        if not (message_id and stamp):
            raise InboundUnauthorized("A signed delivery needs webhook-id and webhook-timestamp too.")
        # Before the source is looked up: a stale delivery is refused the same whether the source exists or not.
        sent_at = check_timestamp(stamp, tolerance_seconds)
        return _Claim("signature", _message_id(message_id, "webhook-id"), sent_at, signatures)
    tokens = _given_tokens(request, query_token)
    if not tokens:
        raise InboundUnauthorized(
            "Sign the request (Standard Webhooks) or send the source's token "
            "(Authorization: Bearer, X-Voronka-Token, or ?token=)."
        )
    key = request.headers.get("idempotency-key")
    if key is None:
        # Without an Idempotency-Key a token request cannot be recognised when repeated: each one is new.
        return _Claim("token", f"auto_{uuid.uuid4().hex}", tokens=tokens)
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]  # a structured-field string ("abc") names the same key as abc
    return _Claim("token", _message_id(key, "Idempotency-Key"), tokens=tokens)


def _kept_headers(request: Request, mode: str) -> dict[str, str]:
    kept = {name: request.headers[name] for name in KEPT_HEADERS if name in request.headers}
    if request.client is not None:
        kept["remote_addr"] = request.client.host
    kept["auth"] = mode
    return kept


class Accepted(BaseModel):
    id: uuid.UUID = Field(description="The inbound request (GET /v1/inbound-requests/{id})")
    status: str = Field(description="accepted (stored, to be processed) or duplicate (this message id came before)")


# What Tilda sends to a webhook URL when it is connected, to check that it answers.
TILDA_CHECK = b"test=test"


class ConnectionCheck(BaseModel):
    status: str = "ok"
    detail: str = "Connection check received; nothing was stored."


@router.post(
    "/v1/inbound/{source_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses={200: {"model": Accepted, "description": "A repeat of a message id already received"}},
    summary="Receive a lead from a source (signed or with the source's token)",
)
async def receive(
    source_id: str,
    request: Request,
    db: DB,
    token: Annotated[str | None, Query(description="The source's token, for HTML forms that cannot set headers")]
    = None,
) -> Response:
    settings = get_settings()
    content_type = request.headers.get("content-type", "")
    media_type = _media_type(content_type)
    if not _supported(media_type):
        raise UnsupportedMediaType(
            f"Send JSON (application/json) or a form (application/x-www-form-urlencoded), "
            f"not {media_type or 'no content type'}."
        )
    limit = settings.inbound_max_body_bytes
    body = await read_bounded_body(
        request, limit,
        f"An inbound request may carry at most {limit} bytes; a lead needs far less. Send only the form's fields.",
    )
    claim = _claim(request, token, settings.inbound_tolerance_seconds)
    try:
        parsed_id = uuid.UUID(source_id)
    except ValueError:
        raise InboundUnauthorized(NOT_ACCEPTED) from None
    async with db.transaction() as conn:
        source = await source_for_inbound(conn, parsed_id)
        if source is None or not claim.proven_by(source, body):
            raise InboundUnauthorized(NOT_ACCEPTED)
        if not source["active"]:
            # Only a caller holding the credentials learns that the source exists but is switched off.
            raise InboundUnauthorized("This source is inactive; an admin of the workspace can reactivate it.")
        if media_type == "application/x-www-form-urlencoded" and body.strip() == TILDA_CHECK:
            # Tilda checks a new webhook URL with this POST and wants a 200; it carries no lead to keep.
            return model_response(ConnectionCheck(), status.HTTP_200_OK)
        stored = await store_request(
            conn,
            workspace_id=source["workspace_id"],
            source_id=source["id"],
            message_id=claim.message_id,
            content_type=content_type,
            body=body,
            headers=_kept_headers(request, claim.mode),
            channel=InboundWorker.channel,
        )
    # Committed: only now is the request acknowledged.
    answer = Accepted(id=stored.id, status="duplicate" if stored.duplicate else "accepted")
    return model_response(
        answer,
        status.HTTP_200_OK if stored.duplicate else status.HTTP_202_ACCEPTED,
        {"Location": f"/v1/inbound-requests/{stored.id}"},
    )


# -------------------------------------------------------------------------------------------- quarantine


class RequestStatus(StrEnum):
    pending = "pending"
    processed = "processed"
    quarantined = "quarantined"


class InboundRequestOut(BaseModel):
    id: uuid.UUID
    source_id: uuid.UUID
    message_id: str
    status: str = Field(description="pending, processed or quarantined")
    content_type: str
    body: str = Field(description="The raw body as received: text, or base64 when it is not UTF-8")
    body_encoding: str = Field(description="utf-8 or base64: how `body` holds the bytes received")
    headers: dict[str, Any] = Field(description="What was kept about the request: user agent, sender ids, address")
    errors: list[dict[str, Any]] = Field(description="Why it is quarantined: [{field, code, message}]")
    attempts: int
    lead_id: uuid.UUID | None
    outcome: str | None = Field(description="created or merged, once processed")
    received_at: datetime
    processed_at: datetime | None


class InboundRequestPage(BaseModel):
    items: list[InboundRequestOut]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page")


class Replayed(BaseModel):
    replayed: int = Field(description="How many quarantined requests went back to the queue")


def _request_out(row: asyncpg.Record) -> InboundRequestOut:
    values = dict(row)
    raw: bytes = values.pop("body")
    try:
        body, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        body, encoding = base64.b64encode(raw).decode(), "base64"
    return InboundRequestOut(**values, body=body, body_encoding=encoding)


def _require_reader(principal: Principal) -> None:
    if principal.role not in (Role.admin, Role.head_of_sales):
        raise Forbidden("Only admins and heads of sales see inbound requests.")


@router.get("/v1/inbound-requests", response_model=InboundRequestPage, tags=["inbound"])
async def list_requests(
    principal: CurrentPrincipal,
    conn: ReadConn,
    status_: Annotated[RequestStatus | None, Query(alias="status")] = None,
    source_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor from the previous page")] = None,
) -> Response:
    """Newest first."""
    _require_reader(principal)
    rows = await InboundRequestRepository(conn, principal).page(
        limit + 1, decode_cursor(cursor) if cursor else None, status_.value if status_ else None, source_id
    )
    items = [_request_out(r) for r in rows[:limit]]
    next_cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return model_response(InboundRequestPage(items=items, next_cursor=next_cursor))


@router.get("/v1/inbound-requests/{request_id}", response_model=InboundRequestOut)
async def get_request(request_id: uuid.UUID, principal: CurrentPrincipal, conn: ReadConn) -> Response:
    _require_reader(principal)
    row = await InboundRequestRepository(conn, principal).get(request_id)
    if row is None:
        raise NotFound(f"There is no inbound request {request_id}.")
    return model_response(_request_out(row))


@router.post(
    "/v1/inbound-requests/{request_id}/replay", status_code=status.HTTP_202_ACCEPTED,
    response_model=InboundRequestOut,
)
async def replay_request(request_id: uuid.UUID, principal: CurrentPrincipal, db: DB) -> Response:
    """A quarantined request goes back to the queue and is mapped again with the source's current mapping."""
    _require_reader(principal)
    async with db.transaction() as conn:
        requests = InboundRequestRepository(conn, principal)
        row = await requests.requeue(request_id)
        if row is None:
            current = await requests.get(request_id)
            if current is None:
                raise NotFound(f"There is no inbound request {request_id}.")
            raise Conflict(f"Only a quarantined request can be replayed; this one is {current['status']}.")
        await notify(conn, InboundWorker.channel)
    return model_response(
        _request_out(row), status.HTTP_202_ACCEPTED, {"Location": f"/v1/inbound-requests/{request_id}"}
    )


@router.post("/v1/sources/{source_id}/replay-quarantined", status_code=status.HTTP_202_ACCEPTED,
             response_model=Replayed, tags=["sources"])
async def replay_source(source_id: uuid.UUID, principal: CurrentPrincipal, db: DB) -> Response:
    """Every quarantined request of the source goes back to the queue (after its mapping was fixed)."""
    _require_reader(principal)
    async with db.transaction() as conn:
        if await SourceRepository(conn, principal).get(source_id) is None:
            raise NotFound(f"There is no source {source_id}.")
        count = await InboundRequestRepository(conn, principal).requeue_source(source_id)
        if count:
            await notify(conn, InboundWorker.channel)
    return model_response(Replayed(replayed=count), status.HTTP_202_ACCEPTED)
