"""HTTP: /v1/leads — create, read one, list with a cursor or fetch a batch by ids."""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Query, Response, status

from services.common.auth import CurrentPrincipal
from services.common.db import DB, Connection, ReadConn
from services.common.idempotency import IdempotencyKeyHeader, IdempotentRequest, answer_once
from services.common.problems import InvalidField, NotFound
from services.common.responses import model_response
from services.leads.capture import create_lead
from services.leads.models import SCHEMA
from services.leads.repository import LeadRepository
from services.leads.schemas import LeadCreate, LeadOut, LeadPage

router = APIRouter(prefix="/v1/leads", tags=["leads"])

MAX_IDS = 200


def _etag(version: int) -> str:
    return f'"{version}"'


def _encode_cursor(lead_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(lead_id.bytes).decode().rstrip("=")


def _decode_cursor(cursor: str) -> uuid.UUID:
    try:
        return uuid.UUID(bytes=base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise InvalidField("cursor", "The cursor is not one this endpoint gave out.") from exc


def _parse_ids(ids: str) -> list[uuid.UUID]:
    parts = [p.strip() for p in ids.split(",") if p.strip()]
    if len(parts) > MAX_IDS:
        raise InvalidField("ids", f"Ask for at most {MAX_IDS} ids at a time.", code="too_long")
    try:
        return [uuid.UUID(p) for p in parts]
    except ValueError as exc:
        raise InvalidField("ids", "Every id must be a UUID.", code="uuid_parsing") from exc


def _created(lead: asyncpg.Record) -> Response:
    return model_response(
        LeadOut.model_validate(dict(lead)),
        status.HTTP_201_CREATED,
        {"Location": f"/v1/leads/{lead['id']}", "ETag": _etag(lead["version"])},
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=LeadOut)
async def post_lead(
    body: LeadCreate, principal: CurrentPrincipal, db: DB, idempotency_key: IdempotencyKeyHeader = None
) -> Response:
    if idempotency_key is None:
        async with db.transaction() as conn:
            lead = await create_lead(conn, principal, body)
        # Committed: only now is the lead acknowledged.
        return _created(lead)

    async def write(conn: Connection) -> Response:
        return _created(await create_lead(conn, principal, body))

    keyed = IdempotentRequest.of(principal, idempotency_key, "POST /v1/leads", body)
    # answer_once returns only after the commit, or the first request's answer if the key has one.
    return await answer_once(db, SCHEMA, keyed, write)


@router.get("/{lead_id}", response_model=LeadOut)
async def get_lead(lead_id: uuid.UUID, principal: CurrentPrincipal, conn: ReadConn) -> Response:
    lead = await LeadRepository(conn, principal).get(lead_id)
    if lead is None:
        raise NotFound(f"There is no lead {lead_id}.")
    return model_response(LeadOut.model_validate(dict(lead)), headers={"ETag": _etag(lead["version"])})


@router.get("", response_model=LeadPage)
async def list_leads(
    principal: CurrentPrincipal,
    conn: ReadConn,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor from the previous page")] = None,
    ids: Annotated[str | None, Query(description=f"Comma-separated lead ids (at most {MAX_IDS})")] = None,
) -> LeadPage:
    repository = LeadRepository(conn, principal)
    if ids is not None:
        rows = await repository.many(_parse_ids(ids))
        return LeadPage(items=[LeadOut.model_validate(dict(r)) for r in rows], next_cursor=None)
    rows = await repository.page(limit + 1, _decode_cursor(cursor) if cursor else None)
    items = [LeadOut.model_validate(dict(r)) for r in rows[:limit]]
    next_cursor = _encode_cursor(items[-1].id) if len(rows) > limit else None
    return LeadPage(items=items, next_cursor=next_cursor)
