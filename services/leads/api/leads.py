"""HTTP: /v1/leads — take leads in (one or a batch), find them, edit them, move them through the lifecycle,
merge duplicates, and read a lead's history."""

from __future__ import annotations

import asyncio
import base64
import binascii
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
import orjson
from fastapi import APIRouter, Query, Response, status

from services.common.auth import CurrentPrincipal, Principal
from services.common.db import DB, Connection, ReadConn
from services.common.etags import IfMatchHeader, check_version, etag
from services.common.idempotency import IdempotencyKeyHeader, IdempotentRequest, answer_once
from services.common.problems import InvalidField, InvalidFields, NotFound, Problem
from services.common.responses import model_response
from services.leads import intake
from services.leads.capture import capture, owner_for
from services.leads.editing import edit_lead
from services.leads.lifecycle import check_transition, record_status
from services.leads.merging import merge_leads
from services.leads.models import SCHEMA
from services.leads.repository import SORTS, LeadFilter, LeadRepository, Position
from services.leads.schemas import (
    BatchItemResult,
    BatchRequest,
    BatchResult,
    Channel,
    HiddenMerge,
    LeadCreate,
    LeadHistory,
    LeadOut,
    LeadPage,
    LeadPatch,
    MergeOut,
    MergeRequest,
    Status,
    StatusChange,
    StatusChangeOut,
    TouchOut,
    Via,
)

router = APIRouter(prefix="/v1/leads", tags=["leads"])

MAX_IDS = 200


def _lead_response(lead: asyncpg.Record, status_code: int = 200) -> Response:
    headers = {"ETag": etag(lead["version"])}
    if status_code in (201, 200):
        headers["Location"] = f"/v1/leads/{lead['id']}"
    return model_response(LeadOut.model_validate(dict(lead)), status_code, headers)


def _encode_cursor(sort: str, lead: LeadOut) -> str:
    column, _ = SORTS[sort]
    key = None if column == "id" else getattr(lead, column).isoformat()
    raw = orjson.dumps({"s": sort, "k": key, "i": str(lead.id)})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: str) -> Position:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if data["s"] != sort:
            raise InvalidField("cursor", "This cursor belongs to another sort order; start again without it.")
        key = datetime.fromisoformat(data["k"]) if data["k"] is not None else None
        return Position(key=key, id=uuid.UUID(data["i"]))
    except (binascii.Error, ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
        raise InvalidField("cursor", "The cursor is not one this endpoint gave out.") from exc


def _parse_ids(ids: str) -> list[uuid.UUID]:
    parts = [p.strip() for p in ids.split(",") if p.strip()]
    if len(parts) > MAX_IDS:
        raise InvalidField("ids", f"Ask for at most {MAX_IDS} ids at a time.", code="too_long")
    try:
        return [uuid.UUID(p) for p in parts]
    except ValueError as exc:
        raise InvalidField("ids", "Every id must be a UUID.", code="uuid_parsing") from exc


def _search_text(q: str) -> str:
    """What `q` is matched as: lower-cased; a phone number typed with spaces or dashes as its digits."""
    text = " ".join(q.lower().split())
    if text and all(c.isdigit() or c in " +-()." for c in text):
        text = "".join(c for c in text if c.isdigit())
    if len(text) < 3:
        raise InvalidField("q", "Search for at least 3 characters (or 3 digits of a phone number).", "too_short")
    return text


async def _settings(conn: Connection, principal: Principal) -> intake.CaptureSettings:
    return await intake.load_settings(conn, principal.workspace_id)


async def _locked(
    conn: Connection, principal: Principal, lead_id: uuid.UUID, field: str | None = None
) -> asyncpg.Record:
    lead = await LeadRepository(conn, principal).get(lead_id, for_update=True)
    if lead is None:
        message = f"There is no lead {lead_id}."
        raise NotFound(message, errors=[{"field": field, "code": "not_found", "message": message}] if field else ())
    return lead


# ---- taking leads in ------------------------------------------------------------------------------------


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=LeadOut,
    responses={
        200: {"description": "The lead was known (same email or phone): this submission merged into it"},
        202: {"model": HiddenMerge, "description": "Merged into a lead another rep owns (not shown to a rep)"},
    },
)
async def post_lead(
    body: LeadCreate, principal: CurrentPrincipal, db: DB, idempotency_key: IdempotencyKeyHeader = None
) -> Response:
    """Takes one lead in. A lead whose email or phone is known merges into that lead (200) instead of
    creating a twin (201); when a rep's submission matches another rep's lead, the answer is 202 with the
    lead's id only."""

    async def write(conn: Connection) -> Response:
        try:
            lead = intake.prepare(body, await _settings(conn, principal))
        except intake.InvalidLead as exc:
            raise InvalidFields(exc.errors) from exc
        [result] = await capture(conn, principal, [lead], via=Via.api)
        if result.outcome == "created":
            return _lead_response(result.lead, 201)
        if principal.sees_whole_workspace or result.lead["owner_id"] == principal.user_id:
            return _lead_response(result.lead, 200)
        # The person is another rep's lead: the touch is kept on it, but its details are not this rep's to see.
        return model_response(HiddenMerge(lead_id=result.lead["id"]), 202)

    if idempotency_key is None:
        async with db.transaction() as conn:
            response = await write(conn)
        # Committed: only now is the lead acknowledged.
        return response
    keyed = IdempotentRequest.of(principal, idempotency_key, "POST /v1/leads", body)
    # answer_once returns only after the commit, or the first request's answer if the key has one.
    return await answer_once(db, SCHEMA, keyed, write)


@router.post(":batch", response_model=BatchResult)
async def post_batch(
    body: BatchRequest, principal: CurrentPrincipal, db: DB, idempotency_key: IdempotencyKeyHeader = None
) -> Response:
    """Takes up to 1,000 leads in one transaction. Each item is created, merged or rejected with its reasons;
    a rejected item does not stop the others."""

    async with db.connection() as conn:
        settings = await _settings(conn, principal)
    # Checking a thousand leads is ~0.2 s of CPU (phone numbers, mostly): off the event loop, so the service
    # keeps answering meanwhile, and outside the transaction, so no connection is held while it runs.
    results, valid, positions = await asyncio.to_thread(_check_batch, body.items, settings, principal)

    async def write(conn: Connection) -> Response:
        outcomes = list(results)
        for i, captured in zip(positions, await capture(conn, principal, valid, via=Via.batch), strict=True):
            outcomes[i] = BatchItemResult(index=i, outcome=captured.outcome, lead_id=captured.lead["id"])
        items = [r for r in outcomes if r is not None]
        summary = BatchResult(
            created=sum(r.outcome == "created" for r in items),
            merged=sum(r.outcome == "merged" for r in items),
            rejected=sum(r.outcome == "rejected" for r in items),
            items=items,
        )
        return model_response(summary)

    if idempotency_key is None:
        async with db.transaction() as conn:
            response = await write(conn)
        return response
    keyed = IdempotentRequest.of(principal, idempotency_key, "POST /v1/leads:batch", body)
    return await answer_once(db, SCHEMA, keyed, write)


def _check_batch(
    raw_items: list[dict[str, Any]], settings: intake.CaptureSettings, principal: Principal
) -> tuple[list[BatchItemResult | None], list[LeadCreate], list[int]]:
    """Each item checked on its own: the rejected with their reasons, the valid ones and where they were."""
    results: list[BatchItemResult | None] = [None] * len(raw_items)
    valid: list[LeadCreate] = []
    positions: list[int] = []
    for i, raw in enumerate(raw_items):
        try:
            item = intake.validate_lead(raw, settings, prefix=f"items[{i}].")
            owner_for(principal, item.owner_id)
        except intake.InvalidLead as exc:
            results[i] = BatchItemResult(index=i, outcome="rejected", errors=exc.errors)
            continue
        except Problem as exc:
            results[i] = BatchItemResult(
                index=i, outcome="rejected",
                errors=[{"field": f"items[{i}].owner_id", "code": "forbidden", "message": exc.detail}],
            )
            continue
        valid.append(item)
        positions.append(i)
    return results, valid, positions


# ---- reading --------------------------------------------------------------------------------------------


@router.get("/{lead_id}", response_model=LeadOut)
async def get_lead(lead_id: uuid.UUID, principal: CurrentPrincipal, conn: ReadConn) -> Response:
    lead = await LeadRepository(conn, principal).get(lead_id)
    if lead is None:
        raise NotFound(f"There is no lead {lead_id}.")
    return model_response(LeadOut.model_validate(dict(lead)), headers={"ETag": etag(lead["version"])})


@router.get("", response_model=LeadPage)
async def list_leads(
    principal: CurrentPrincipal,
    conn: ReadConn,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor from the previous page")] = None,
    ids: Annotated[str | None, Query(description=f"Comma-separated lead ids (at most {MAX_IDS})")] = None,
    lead_status: Annotated[
        list[Status] | None, Query(alias="status", description="One or more statuses (merged leads only if asked)")
    ] = None,
    owner_id: Annotated[uuid.UUID | None, Query()] = None,
    unassigned: Annotated[bool, Query(description="Only leads nobody owns yet")] = False,
    source_id: Annotated[uuid.UUID | None, Query()] = None,
    channel: Annotated[Channel | None, Query()] = None,
    tag: Annotated[str | None, Query(max_length=50)] = None,
    created_after: Annotated[datetime | None, Query(description="ISO 8601 with offset, inclusive")] = None,
    created_before: Annotated[datetime | None, Query(description="ISO 8601 with offset, exclusive")] = None,
    q: Annotated[str | None, Query(max_length=200, description="Part of the name, email, phone or company")] = None,
    grade: Annotated[
        list[Literal["A", "B", "C", "D"]] | None,
        Query(description="One or more stored grades; a lead not scored yet matches none"),
    ] = None,
    temperature: Annotated[
        list[Literal["hot", "warm", "cold"]] | None,
        Query(description="One or more stored temperatures; a lead not scored yet matches none"),
    ] = None,
    sort: Annotated[str, Query(description="created_at, -created_at (default), updated_at, -updated_at")] = (
        "-created_at"
    ),
) -> Response:
    repository = LeadRepository(conn, principal)
    if ids is not None:
        rows = await repository.many(_parse_ids(ids))
        return _page(rows, None)
    if sort not in SORTS:
        raise InvalidField("sort", f"Sort by one of: {', '.join(SORTS)}.")
    for name, moment in (("created_after", created_after), ("created_before", created_before)):
        if moment is not None and moment.tzinfo is None:
            raise InvalidField(name, "Give the time with its UTC offset, e.g. 2026-11-25T09:00:00+00:00.")
    where = LeadFilter(
        status=[s.value for s in lead_status] if lead_status else None, owner_id=owner_id, unassigned=unassigned,
        source_id=source_id, channel=channel.value if channel else None, tag=tag,
        created_after=created_after, created_before=created_before, text=_search_text(q) if q else None,
        grade=list(dict.fromkeys(grade)) if grade else None,
        temperature=list(dict.fromkeys(temperature)) if temperature else None,
    )
    after = _decode_cursor(cursor, sort) if cursor else None
    rows = await repository.page(limit + 1, sort=sort, after=after, where=where)
    return _page(rows[:limit], sort if len(rows) > limit else None)


def _page(rows: list[asyncpg.Record], continue_in: str | None) -> Response:
    """A page of leads as JSON. The rows come from our own table in LeadOut's shape, so they are serialized
    without validating them again (twice, with FastAPI's response_model): a third of a page's CPU otherwise."""
    items = [LeadOut.model_construct(**dict(r)) for r in rows]
    next_cursor = _encode_cursor(continue_in, items[-1]) if continue_in and items else None
    return model_response(LeadPage.model_construct(items=items, next_cursor=next_cursor))


@router.get("/{lead_id}/history", response_model=LeadHistory)
async def lead_history(lead_id: uuid.UUID, principal: CurrentPrincipal, conn: ReadConn) -> LeadHistory:
    """Every touch (where the lead reached us, each time), status change and hand merge."""
    repository = LeadRepository(conn, principal)
    if await repository.get(lead_id) is None:
        raise NotFound(f"There is no lead {lead_id}.")
    return LeadHistory(
        touches=[TouchOut.model_validate(dict(r)) for r in await repository.touches(lead_id)],
        status_changes=[StatusChangeOut.model_validate(dict(r)) for r in await repository.status_changes(lead_id)],
        merges=[MergeOut.model_validate(dict(r)) for r in await repository.merges(lead_id)],
    )


# ---- changing -------------------------------------------------------------------------------------------


@router.patch("/{lead_id}", response_model=LeadOut)
async def patch_lead(
    lead_id: uuid.UUID, body: LeadPatch, principal: CurrentPrincipal, db: DB, if_match: IfMatchHeader = None
) -> Response:
    """Changes the fields sent (null clears one; `custom` merges key by key). With If-Match, only if nobody
    changed the lead since that version (412 otherwise)."""
    async with db.transaction() as conn:
        lead = await _locked(conn, principal, lead_id)
        check_version(if_match, lead["version"])
        updated = await edit_lead(conn, principal, lead, body, await _settings(conn, principal))
    return _lead_response(updated)


@router.post("/{lead_id}/status", response_model=LeadOut)
async def change_status(
    lead_id: uuid.UUID,
    body: StatusChange,
    principal: CurrentPrincipal,
    db: DB,
    if_match: IfMatchHeader = None,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Moves the lead along its lifecycle; an illegal move is 409 and says which moves are allowed. Qualifying
    is `POST /v1/leads/{id}/qualify`: it checks the workspace's required answers and publishes lead.qualified."""
    if body.status is Status.qualified:
        # A lead qualified here would skip the answers and never reach the deals service (no lead.qualified).
        raise InvalidField(
            "status", f"Qualify the lead with POST /v1/leads/{lead_id}/qualify: it checks the workspace's required "
            "answers and hands the lead to a closer.", "use_qualify",
        )

    async def write(conn: Connection) -> Response:
        lead = await _locked(conn, principal, lead_id)
        check_version(if_match, lead["version"])
        check_transition(Status(lead["status"]), body, await _settings(conn, principal))
        return _lead_response(
            await record_status(conn, principal, lead, body.status, reason=body.reason, comment=body.comment)
        )

    if idempotency_key is None:
        async with db.transaction() as conn:
            response = await write(conn)
        return response
    keyed = IdempotentRequest.of(principal, idempotency_key, f"POST /v1/leads/{lead_id}/status", body)
    return await answer_once(db, SCHEMA, keyed, write)


@router.post("/{lead_id}/merge", response_model=LeadOut)
async def merge(
    lead_id: uuid.UUID,
    body: MergeRequest,
    principal: CurrentPrincipal,
    db: DB,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Folds another lead into this one: this lead takes the fields it lacks, the other's emails, phones and
    touches, and the other becomes `merged` (read-only, pointing here). The audit is in the history."""
    if body.other_lead_id == lead_id:
        raise InvalidField("other_lead_id", "A lead cannot be merged into itself.")

    async def write(conn: Connection) -> Response:
        # Lock both in id order, as every writer does, so two opposite merges cannot deadlock.
        first, second = sorted((lead_id, body.other_lead_id))
        locked: dict[uuid.UUID, Any] = {}
        for target in (first, second):
            field = "other_lead_id" if target == body.other_lead_id else None
            locked[target] = await _locked(conn, principal, target, field)
        return _lead_response(await merge_leads(conn, principal, locked[lead_id], locked[body.other_lead_id]))

    if idempotency_key is None:
        async with db.transaction() as conn:
            response = await write(conn)
        return response
    keyed = IdempotentRequest.of(principal, idempotency_key, f"POST /v1/leads/{lead_id}/merge", body)
    return await answer_once(db, SCHEMA, keyed, write)



