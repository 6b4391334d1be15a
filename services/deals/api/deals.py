"""HTTP: /v1/deals — open a deal, find deals, read one, change its fields.

A rep sees and opens only their own deals; heads of sales and admins see the whole workspace and may give a deal
to anyone. Publishes deal.created and deal.updated. The workspace's default pipeline is created on its first
call to any of these.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Query, Response, status

from services.common.auth import CurrentPrincipal
from services.common.cursors import decode_cursor, encode_cursor
from services.common.db import DB, Connection
from services.common.etags import IfMatchHeader, check_version, etag
from services.common.idempotency import IdempotencyKeyHeader, IdempotentRequest, answer_once
from services.common.problems import NotFound
from services.common.responses import model_response
from services.deals.default_pipeline import ensure_default
from services.deals.editing import edit_deal
from services.deals.models import SCHEMA
from services.deals.opening import open_deal, place, values_from_request
from services.deals.repository import DealFilter, DealRepository, as_fields
from services.deals.schemas import DealCreate, DealOut, DealPage, DealPatch, DealStatus

router = APIRouter(prefix="/v1/deals", tags=["deals"])


def deal_out(row: asyncpg.Record) -> DealOut:
    return DealOut.model_validate(as_fields(row))


def _response(row: asyncpg.Record, status_code: int = 200) -> Response:
    headers = {"Location": f"/v1/deals/{row['id']}", "ETag": etag(row["version"])}
    return model_response(deal_out(row), status_code, headers)


async def _found(repository: DealRepository, deal_id: uuid.UUID, *, for_update: bool = False) -> asyncpg.Record:
    row = await repository.get(deal_id, for_update=for_update)
    if row is None:
        raise NotFound(f"There is no deal {deal_id}.")
    return row


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DealOut)
async def create_deal(
    body: DealCreate, principal: CurrentPrincipal, db: DB, idempotency_key: IdempotencyKeyHeader = None
) -> Response:
    """Opens a deal: in the default pipeline's first stage unless told otherwise. Without `amount`, a deal with
    line items is worth their total."""
    values = values_from_request(principal, body)
    await ensure_default(db, principal)

    async def write(conn: Connection) -> Response:
        pipeline_id, stage_id = await place(conn, principal.workspace_id, body.pipeline_id, body.stage_id)
        row = await open_deal(conn, principal.workspace_id, {**values, "pipeline_id": pipeline_id,
                                                             "stage_id": stage_id})
        assert row is not None  # only a lead's deal can conflict, and this one has no lead
        return _response(row, status.HTTP_201_CREATED)

    if idempotency_key is None:
        async with db.transaction() as conn:
            response = await write(conn)
        return response
    keyed = IdempotentRequest.of(principal, idempotency_key, "POST /v1/deals", body)
    return await answer_once(db, SCHEMA, keyed, write)


@router.get("", response_model=DealPage)
async def list_deals(
    principal: CurrentPrincipal,
    db: DB,
    pipeline_id: Annotated[uuid.UUID | None, Query()] = None,
    stage_id: Annotated[uuid.UUID | None, Query()] = None,
    owner_id: Annotated[uuid.UUID | None, Query()] = None,
    deal_status: Annotated[DealStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor from the previous page")] = None,
) -> Response:
    """The deals the caller sees (a rep: their own), newest first."""
    after = decode_cursor(cursor) if cursor else None
    where = DealFilter(pipeline_id=pipeline_id, stage_id=stage_id, owner_id=owner_id, status=deal_status)
    async with db.connection() as conn:
        rows = await DealRepository(conn, principal).page(limit + 1, after, where)
    items = [deal_out(r) for r in rows[:limit]]
    next_cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return model_response(DealPage(items=items, next_cursor=next_cursor))


@router.get("/{deal_id}", response_model=DealOut)
async def get_deal(deal_id: uuid.UUID, principal: CurrentPrincipal, db: DB) -> Response:
    async with db.connection() as conn:
        row = await _found(DealRepository(conn, principal), deal_id)
    return _response(row)


@router.patch("/{deal_id}", response_model=DealOut)
async def patch_deal(
    deal_id: uuid.UUID, body: DealPatch, principal: CurrentPrincipal, db: DB, if_match: IfMatchHeader = None
) -> Response:
    """Changes the fields sent (null clears one; `custom` merges key by key). With If-Match, only if nobody
    changed the deal since that version (412 otherwise)."""
    async with db.transaction() as conn:
        deal = await _found(DealRepository(conn, principal), deal_id, for_update=True)
        check_version(if_match, deal["version"])
        row = await edit_deal(conn, principal, deal, body)
    return _response(row)
