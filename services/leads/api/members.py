"""HTTP: /v1/members — the sales team's people: add, list, read, change, and the caller's own record.

Everyone in the workspace reads the roster. Admins and heads of sales add and change members; a rep changes
only their own status, away_until and working_hours. A member's id is the user id their tokens carry, and
`GET /v1/members/me` creates the caller's record on first use, so every signed-in person is on the roster.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Query, Response, status
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from services.common.auth import CurrentPrincipal, Role
from services.common.cursors import decode_cursor, encode_cursor
from services.common.db import DB, Connection, ReadConn
from services.common.etags import IfMatchHeader, check_version, etag
from services.common.idempotency import IdempotencyKeyHeader, IdempotentRequest, answer_once
from services.common.problems import Conflict, Forbidden, InvalidField, NotFound
from services.common.responses import model_response
from services.common.text import NoNul
from services.leads import roster
from services.leads.models import SCHEMA
from services.leads.roster import MemberRepository, MemberRole, MemberStatus
from services.leads.schemas import Channel, Email

router = APIRouter(prefix="/v1/members", tags=["roster"])

MemberName = Annotated[str, NoNul, Field(min_length=1, max_length=200)]
ProductCode = Annotated[str, NoNul, Field(min_length=1, max_length=50)]
TimeZone = Annotated[str, NoNul, Field(max_length=64), AfterValidator(roster.check_time_zone)]
WorkingHours = dict[str, Any]
Capacity = Annotated[int, Field(ge=0, le=1_000_000)]

_HOURS_HELP = (
    'Weekday (mon..sun) -> [start, end) intervals in local time, e.g. {"mon": [["09:00", "13:00"], '
    '["14:00", "18:00"]], "sat": []}; a day left out is a day off'
)


class MemberCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: uuid.UUID = Field(description="The user id the person's tokens carry (`sub`)")
    name: MemberName
    email: Email = None
    role: MemberRole = Field(description="The role in the sales process: hunter, closer, farmer, head_of_sales, admin")
    team_id: uuid.UUID | None = None
    territory_ids: list[uuid.UUID] = Field(default_factory=list, max_length=100)
    products: list[ProductCode] = Field(default_factory=list, max_length=100, description="Product codes they sell")
    channels: list[Channel] = Field(default_factory=list, max_length=20, description="Lead channels they cover")
    time_zone: TimeZone = Field(default="UTC", description="IANA name, e.g. Europe/Moscow")
    working_hours: WorkingHours = Field(default_factory=roster.default_working_hours, description=_HOURS_HELP)
    capacity: Capacity | None = Field(default=None, description="The most open leads they take; null: no limit")
    status: MemberStatus = MemberStatus.active
    away_until: AwareDatetime | None = Field(default=None, description="When an away member is back (with offset)")


class MemberPatch(BaseModel):
    """Only the fields present change; null clears email, team_id, capacity and away_until."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: MemberName | None = None
    email: Email = None
    role: MemberRole | None = None
    team_id: uuid.UUID | None = None
    territory_ids: list[uuid.UUID] | None = Field(default=None, max_length=100)
    products: list[ProductCode] | None = Field(default=None, max_length=100)
    channels: list[Channel] | None = Field(default=None, max_length=20)
    time_zone: TimeZone | None = None
    working_hours: WorkingHours | None = Field(default=None, description=_HOURS_HELP)
    capacity: Capacity | None = None
    status: MemberStatus | None = None
    away_until: AwareDatetime | None = None


# Fields a member always has: a PATCH may change them but not clear them.
REQUIRED = frozenset({"name", "role", "territory_ids", "products", "channels", "time_zone", "working_hours", "status"})


class MemberOut(BaseModel):
    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    email: str | None
    role: str
    team_id: uuid.UUID | None
    territory_ids: list[uuid.UUID]
    products: list[str]
    channels: list[str]
    time_zone: str
    working_hours: dict[str, list[list[str]]]
    capacity: int | None
    status: str
    away_until: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int


class MemberPage(BaseModel):
    items: list[MemberOut]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page")


# -------------------------------------------------------------------------------------------- helpers


def _response(row: asyncpg.Record, status_code: int = 200) -> Response:
    headers = {"Location": f"/v1/members/{row['id']}", "ETag": etag(row["version"])}
    return model_response(MemberOut.model_validate(dict(row)), status_code, headers)


def _stored(sent: dict[str, Any]) -> dict[str, Any]:
    """The fields sent, in the form they are stored; InvalidFields names each bad one."""
    values = dict(sent)
    for name in REQUIRED & values.keys():
        if values[name] is None:
            raise InvalidField(name, f"A member always has {name}; send a new value instead of null.", code="null")
    if "working_hours" in values:
        values["working_hours"] = roster.check_working_hours(values["working_hours"])
    for name in ("territory_ids", "products", "channels"):
        if name in values:
            values[name] = roster.distinct(values[name])
    for name in ("role", "status"):
        if name in values:
            values[name] = values[name].value
    if "channels" in values:
        values["channels"] = [channel.value for channel in values["channels"]]
    return values


# -------------------------------------------------------------------------------------------- endpoints


@router.post("", status_code=status.HTTP_201_CREATED, response_model=MemberOut)
async def create_member(
    body: MemberCreate, principal: CurrentPrincipal, db: DB, idempotency_key: IdempotencyKeyHeader = None
) -> Response:
    """Adds a person to the roster under the user id their tokens carry. Publishes member.created."""
    roster.require_manager(principal, "the team")
    values = _stored({name: getattr(body, name) for name in roster.MEMBER_FIELDS})

    async def write(conn: Connection) -> Response:
        row = await MemberRepository(conn, principal).add(body.id, values)
        if row is None:
            # On a keyed retry, answer_once replays the first answer instead of this conflict.
            message = f"The workspace already has a member {body.id}; change it with PATCH /v1/members/{body.id}."
            raise Conflict(message, errors=[{"field": "id", "code": "taken", "message": message}])
        return _response(row, status.HTTP_201_CREATED)

    if idempotency_key is None:
        async with db.transaction() as conn:
            response = await write(conn)
        return response
    keyed = IdempotentRequest.of(principal, idempotency_key, "POST /v1/members", body)
    return await answer_once(db, SCHEMA, keyed, write)


@router.get("", response_model=MemberPage)
async def list_members(
    principal: CurrentPrincipal,
    conn: ReadConn,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor from the previous page")] = None,
    role: Annotated[MemberRole | None, Query()] = None,
    team_id: Annotated[uuid.UUID | None, Query()] = None,
    member_status: Annotated[MemberStatus | None, Query(alias="status")] = None,
) -> Response:
    rows = await MemberRepository(conn, principal).page(
        limit + 1, decode_cursor(cursor) if cursor else None,
        role=role.value if role else None, team_id=team_id,
        status=member_status.value if member_status else None,
    )
    items = [MemberOut.model_validate(dict(r)) for r in rows[:limit]]
    next_cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return model_response(MemberPage(items=items, next_cursor=next_cursor))


@router.get("/me", response_model=MemberOut)
async def my_member(principal: CurrentPrincipal, db: DB) -> Response:
    """The caller's member record, created from their token on first use: id = the token's user id, the
    role from the token's (admin, head_of_sales; a rep becomes a hunter), named "Member " + the id's first
    8 characters until someone renames them."""
    if principal.role is Role.service:
        raise Forbidden("A service token has no member record.")
    async with db.transaction() as conn:
        row = await MemberRepository(conn, principal).provision()
    return _response(row)


@router.get("/{member_id}", response_model=MemberOut)
async def get_member(member_id: uuid.UUID, principal: CurrentPrincipal, conn: ReadConn) -> Response:
    row = await MemberRepository(conn, principal).get(member_id)
    if row is None:
        raise NotFound(f"There is no member {member_id}.")
    return _response(row)


@router.patch("/{member_id}", response_model=MemberOut)
async def patch_member(
    member_id: uuid.UUID, body: MemberPatch, principal: CurrentPrincipal, db: DB, if_match: IfMatchHeader = None
) -> Response:
    """Changes the fields sent. With If-Match, only if nobody changed the member since that version (412).
    Publishes member.updated with the fields that changed."""
    roster.check_member_change(principal, member_id, body.model_fields_set)
    values = _stored({name: getattr(body, name) for name in body.model_fields_set})
    async with db.transaction() as conn:
        members = MemberRepository(conn, principal)
        current = await members.get(member_id, for_update=True)
        if current is None:
            raise NotFound(f"There is no member {member_id}.")
        check_version(if_match, current["version"])
        row = await members.update(current, values)
    return _response(row)
