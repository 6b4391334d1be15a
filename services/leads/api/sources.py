"""HTTP: /v1/sources — the inbound webhook endpoints of a workspace: create, list, read, change, rotate the secret.

An admin manages sources; a head of sales may read them; a rep may not see them at all (they hold no secrets
in reads, but the mapping and URLs are the workspace's configuration). The secret and token are shown only
in the answer that created them (creation, rotation).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from services.common.auth import CurrentPrincipal, Principal, Role
from services.common.cursors import decode_cursor, encode_cursor
from services.common.db import DB, Connection, ReadConn
from services.common.etags import IfMatchHeader, check_version, etag
from services.common.idempotency import IdempotencyKeyHeader, IdempotentRequest, answer_once
from services.common.problems import Conflict, Forbidden, InvalidField, InvalidFields, NotFound
from services.common.responses import model_response
from services.common.text import NoNul
from services.leads import mapping as field_mapping
from services.leads.models import SCHEMA
from services.leads.schemas import Channel
from services.leads.sources import Credentials, SourceRepository, new_credentials

router = APIRouter(prefix="/v1/sources", tags=["sources"])

SourceName = Annotated[str, NoNul, Field(min_length=1, max_length=100)]


class SourceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: SourceName = Field(description="Unique in the workspace; becomes each lead's `source`")
    channel: Channel
    mapping: dict[str, Any] = Field(
        default_factory=dict, description="Lead field -> where to find it in the payload (docs/leads.md)"
    )
    active: bool = Field(default=True, description="An inactive source refuses deliveries (401)")


class SourcePatch(BaseModel):
    """Only the fields present change."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: SourceName | None = None
    channel: Channel | None = None
    mapping: dict[str, Any] | None = None
    active: bool | None = None


class SourceOut(BaseModel):
    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    channel: str
    mapping: dict[str, Any]
    active: bool
    inbound_url: str = Field(description="The path senders POST to, on the leads service's public address")
    has_secret: bool = Field(description="The secret and token are shown only when created or rotated")
    created_by: uuid.UUID
    created_at: datetime
    updated_at: datetime
    version: int


class SourceWithCredentials(SourceOut):
    secret: str = Field(description="Standard Webhooks signing secret (whsec_...); shown only now")
    token: str = Field(description="For senders that cannot sign (Bearer, X-Voronka-Token or ?token=); shown only now")


class SourcePage(BaseModel):
    items: list[SourceOut]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page")


# -------------------------------------------------------------------------------------------- helpers


def inbound_path(source_id: uuid.UUID) -> str:
    return f"/v1/inbound/{source_id}"


def _out(row: asyncpg.Record) -> SourceOut:
    return SourceOut(**dict(row), inbound_url=inbound_path(row["id"]), has_secret=True)


def _with_credentials(row: asyncpg.Record, credentials: Credentials) -> SourceWithCredentials:
    return SourceWithCredentials(
        **dict(row), inbound_url=inbound_path(row["id"]), has_secret=True,
        secret=credentials.secret, token=credentials.token,
    )


def _headers(row: asyncpg.Record) -> dict[str, str]:
    return {"Location": f"/v1/sources/{row['id']}", "ETag": etag(row["version"])}


def _require_admin(principal: Principal) -> None:
    if principal.role is not Role.admin:
        raise Forbidden("Only an admin manages sources.")


def _require_reader(principal: Principal) -> None:
    if principal.role not in (Role.admin, Role.head_of_sales):
        raise Forbidden("Only admins and heads of sales see the workspace's sources.")


def _checked_mapping(mapping: dict[str, Any]) -> dict[str, Any]:
    """422 naming `mapping.<target>` for each rule the mapping breaks."""
    errors = field_mapping.validate_mapping(mapping)
    if errors:
        raise InvalidFields(
            [{**e, "field": e["field"] if e["field"].startswith("mapping") else f"mapping.{e['field']}"}
             for e in errors]
        )
    return mapping


def _name_taken(name: str) -> Conflict:
    return Conflict(f"The workspace already has a source named {name!r}.",
                    errors=[{"field": "name", "code": "taken", "message": "Choose another name."}])


# -------------------------------------------------------------------------------------------- endpoints


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SourceWithCredentials)
async def create_source(
    body: SourceCreate, principal: CurrentPrincipal, db: DB, idempotency_key: IdempotencyKeyHeader = None
) -> Response:
    _require_admin(principal)
    mapping = _checked_mapping(body.mapping)

    keyed = IdempotentRequest.of(principal, idempotency_key, "POST /v1/sources", body) if idempotency_key else None

    async def write(conn: Connection) -> Response:
        credentials = new_credentials()
        row = await SourceRepository(conn, principal).add(
            body.name, body.channel.value, mapping, body.active, credentials
        )
        if row is None:
            # On a keyed retry, answer_once replays the first answer instead of this conflict.
            raise _name_taken(body.name)
        return model_response(_with_credentials(row, credentials), status.HTTP_201_CREATED, _headers(row))

    if keyed is None:
        async with db.transaction() as conn:
            response = await write(conn)
        return response
    return await answer_once(db, SCHEMA, keyed, write)


@router.get("", response_model=SourcePage)
async def list_sources(
    principal: CurrentPrincipal,
    conn: ReadConn,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor from the previous page")] = None,
) -> Response:
    _require_reader(principal)
    rows = await SourceRepository(conn, principal).page(limit + 1, decode_cursor(cursor) if cursor else None)
    items = [_out(r) for r in rows[:limit]]
    next_cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return model_response(SourcePage(items=items, next_cursor=next_cursor))


@router.get("/{source_id}", response_model=SourceOut)
async def get_source(source_id: uuid.UUID, principal: CurrentPrincipal, conn: ReadConn) -> Response:
    _require_reader(principal)
    row = await SourceRepository(conn, principal).get(source_id)
    if row is None:
        raise NotFound(f"There is no source {source_id}.")
    return model_response(_out(row), headers=_headers(row))


@router.patch("/{source_id}", response_model=SourceOut)
async def patch_source(
    source_id: uuid.UUID, body: SourcePatch, principal: CurrentPrincipal, db: DB, if_match: IfMatchHeader = None
) -> Response:
    _require_admin(principal)
    changes = body.model_dump(exclude_unset=True, mode="json")
    for name, value in changes.items():
        if value is None:
            raise InvalidField(name, f"{name} cannot be cleared; leave it out to keep it.", code="null")
    if "mapping" in changes:
        _checked_mapping(changes["mapping"])
    try:
        async with db.transaction() as conn:
            sources = SourceRepository(conn, principal)
            current = await sources.get(source_id, for_update=True)
            if current is None:
                raise NotFound(f"There is no source {source_id}.")
            check_version(if_match, current["version"])
            row = await sources.update(source_id, changes) if changes else current
    except asyncpg.UniqueViolationError as exc:
        raise _name_taken(changes.get("name", "")) from exc
    return model_response(_out(row), headers=_headers(row))


@router.post("/{source_id}/rotate-secret", response_model=SourceWithCredentials)
async def rotate_secret(source_id: uuid.UUID, principal: CurrentPrincipal, db: DB) -> Response:
    """A new secret and token; the old ones stop working at once (there is no overlap)."""
    _require_admin(principal)
    credentials = new_credentials()
    async with db.transaction() as conn:
        row = await SourceRepository(conn, principal).rotate(source_id, credentials)
    if row is None:
        raise NotFound(f"There is no source {source_id}.")
    return model_response(_with_credentials(row, credentials), headers=_headers(row))
