"""The sales team in GraphQL: members, teams and territories (`/v1/members`, `/v1/teams`, `/v1/territories`).

Everyone in the workspace reads the roster; admins and heads of sales change it, and a rep changes only their
own `status`, `awayUntil` and `workingHours`. `me` is the caller's member record, made on their first ask.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

import strawberry

from gateway.clients.base import UpstreamRejected
from gateway.clients.roster import MemberRecord, TeamRecord, TerritoryRecord
from gateway.context import Info
from gateway.pagination import MAX_FIRST, window
from gateway.types.common import (
    PageInfo,
    UserError,
    given,
    no_such,
    parse_uuid,
    refuse_query,
    sent,
    user_errors,
)
from gateway.types.leads import IDEMPOTENCY_KEY, Channel

DEFAULT_FIRST = 20

VERSION = "The `version` you read: the change applies only if nobody changed it since (else STALE_VERSION)."


# ---- enums ------------------------------------------------------------------------------------------------


@strawberry.enum(
    description=(
        "The role in the sales process. Not the token's auth role (admin, head of sales, rep), which alone "
        "decides what someone may do in Voronka."
    )
)
class MemberRole(Enum):
    HUNTER = "hunter"
    CLOSER = "closer"
    FARMER = "farmer"
    HEAD_OF_SALES = "head_of_sales"
    ADMIN = "admin"


@strawberry.enum(
    description="ACTIVE, AWAY (back at `awayUntil`), or INACTIVE: someone who left (members are never deleted)."
)
class MemberStatus(Enum):
    ACTIVE = "active"
    AWAY = "away"
    INACTIVE = "inactive"


@strawberry.enum
class Weekday(Enum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


def _id(value: uuid.UUID) -> strawberry.ID:
    return strawberry.ID(str(value))


def _optional_id(value: uuid.UUID | None) -> strawberry.ID | None:
    return strawberry.ID(str(value)) if value is not None else None


# ---- types ------------------------------------------------------------------------------------------------


@strawberry.type(description="From `start` up to (not including) `end`, in the member's local time.")
class TimeInterval:
    start: str = strawberry.field(description="HH:MM, 00:00 to 23:59.")
    end: str = strawberry.field(description="HH:MM, after `start`; 24:00 is the end of the day.")


@strawberry.type
class WorkingDay:
    day: Weekday
    intervals: list[TimeInterval] = strawberry.field(description="In time order; none on a day off.")


def _week(hours: dict[str, list[list[str]]]) -> list[WorkingDay]:
    return [
        WorkingDay(day=day, intervals=[TimeInterval(start=start, end=end) for start, end in hours.get(day.value, [])])
        for day in Weekday
    ]


async def resolve_member_team(root: Member, info: Info) -> Team | None:
    if root.team_id is None:
        return None
    record = await info.context.loaders.team.load(uuid.UUID(root.team_id))
    return Team.from_record(record) if record else None


@strawberry.type(description="A person of the workspace and what they take on. Their id is their tokens' user id.")
class Member:
    id: strawberry.ID
    name: str
    email: str | None
    role: MemberRole
    team_id: strawberry.ID | None
    territory_ids: list[strawberry.ID] = strawberry.field(description="The territories the member covers.")
    products: list[str] = strawberry.field(description="Codes of the products they sell.")
    channels: list[Channel] = strawberry.field(description="The lead channels they cover.")
    time_zone: str = strawberry.field(description="IANA name, e.g. Europe/Moscow; `workingHours` are in it.")
    working_hours: list[WorkingDay] = strawberry.field(description="All seven days, Monday first.")
    capacity: int | None = strawberry.field(description="The most open leads they take; null: no limit.")
    status: MemberStatus
    away_until: datetime | None = strawberry.field(description="When an AWAY member is back (informational).")
    created_at: datetime
    updated_at: datetime
    version: int = strawberry.field(
        description="Goes up with every change; pass it back as `version` to change only what you read."
    )
    team: Team | None = strawberry.field(
        resolver=resolve_member_team, description="The member's team (read once per request, however often asked)."
    )

    @classmethod
    def from_record(cls, record: MemberRecord) -> Member:
        return cls(
            id=_id(record.id),
            name=record.name,
            email=record.email,
            role=MemberRole(record.role),
            team_id=_optional_id(record.team_id),
            territory_ids=[_id(territory_id) for territory_id in record.territory_ids],
            products=list(record.products),
            channels=[Channel(channel) for channel in record.channels],
            time_zone=record.time_zone,
            working_hours=_week(record.working_hours),
            capacity=record.capacity,
            status=MemberStatus(record.status),
            away_until=record.away_until,
            created_at=record.created_at,
            updated_at=record.updated_at,
            version=record.version,
        )


async def resolve_team_head(root: Team, info: Info) -> Member | None:
    if root.head_id is None:
        return None
    record = await info.context.loaders.member.load(uuid.UUID(root.head_id))
    return Member.from_record(record) if record else None


@strawberry.type(description="A group of members with their head.")
class Team:
    id: strawberry.ID
    name: str = strawberry.field(description="Unique in the workspace, ignoring case.")
    description: str | None
    head_id: strawberry.ID | None
    created_at: datetime
    updated_at: datetime
    version: int
    head: Member | None = strawberry.field(resolver=resolve_team_head, description="The member who leads the team.")

    @classmethod
    def from_record(cls, record: TeamRecord) -> Team:
        return cls(
            id=_id(record.id),
            name=record.name,
            description=record.description,
            head_id=_optional_id(record.head_id),
            created_at=record.created_at,
            updated_at=record.updated_at,
            version=record.version,
        )


@strawberry.type(
    description=(
        "A place members cover. It covers a place when every list it fills matches (ignoring case and spacing); "
        "an empty list matches any place."
    )
)
class Territory:
    id: strawberry.ID
    name: str = strawberry.field(description="Unique in the workspace, ignoring case.")
    countries: list[str] = strawberry.field(description="ISO 3166-1 alpha-2 codes, e.g. DE.")
    regions: list[str]
    cities: list[str]
    postal_prefixes: list[str] = strawberry.field(description="Starts of postal codes, e.g. 80 or SW1A.")
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def from_record(cls, record: TerritoryRecord) -> Territory:
        return cls(
            id=_id(record.id),
            name=record.name,
            countries=list(record.countries),
            regions=list(record.regions),
            cities=list(record.cities),
            postal_prefixes=list(record.postal_prefixes),
            created_at=record.created_at,
            updated_at=record.updated_at,
            version=record.version,
        )


@strawberry.type
class MemberEdge:
    cursor: str
    node: Member


@strawberry.type
class MemberConnection:
    edges: list[MemberEdge]
    page_info: PageInfo


@strawberry.type
class TeamEdge:
    cursor: str
    node: Team


@strawberry.type
class TeamConnection:
    edges: list[TeamEdge]
    page_info: PageInfo


@strawberry.type
class TerritoryEdge:
    cursor: str
    node: Territory


@strawberry.type
class TerritoryConnection:
    edges: list[TerritoryEdge]
    page_info: PageInfo


# ---- working hours in, and errors about them --------------------------------------------------------------


@strawberry.input
class TimeIntervalInput:
    start: str = strawberry.field(description="HH:MM local time, e.g. 09:00.")
    end: str = strawberry.field(description="HH:MM, after `start`; 24:00 for the end of the day.")


@strawberry.input(description="A day's intervals must not overlap; a day left out is a day off.")
class WorkingDayInput:
    day: Weekday
    intervals: list[TimeIntervalInput] = strawberry.field(description="At most 12; [] for a day off.")


@dataclass
class Hours:
    """`workingHours` as the service takes them ({"mon": [["09:00", "18:00"]], ...}), and where in the list the
    client sent each day and interval came from, so the service's errors can point back into it."""

    week: dict[str, list[list[str]]] = field(default_factory=dict)
    # day -> (entry, interval) in `workingHours` of each interval sent upstream for that day, in order.
    origins: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    # day -> the first entry of `workingHours` that named it.
    entries: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, days: Sequence[WorkingDayInput]) -> Hours:
        """A day named twice gets both entries' intervals (the service then says whether they overlap)."""
        hours = cls()
        for entry, working_day in enumerate(days):
            day = working_day.day.value
            hours.entries.setdefault(day, entry)
            intervals = hours.week.setdefault(day, [])
            origins = hours.origins.setdefault(day, [])
            for index, interval in enumerate(working_day.intervals):
                intervals.append([interval.start, interval.end])
                origins.append((entry, index))
        return hours

    def locate(self, path: list[str]) -> list[str]:
        """The service's path (["input", "workingHours", "mon", "1"], from `working_hours.mon[1]`) as the path
        into the list sent: ["input", "workingHours", "<entry>", "intervals", "<interval>"]."""
        head, rest = path[:2], path[2:]
        if head != ["input", "workingHours"] or not rest or rest[0] not in self.entries:
            return path
        day, below = rest[0], rest[1:]
        origins = self.origins.get(day, [])
        if below and below[0].isdigit() and int(below[0]) < len(origins):
            entry, interval = origins[int(below[0])]
            return [*head, str(entry), "intervals", str(interval), *below[1:]]
        return [*head, str(self.entries[day]), "intervals", *below]


def _member_errors(rejected: UpstreamRejected, hours: Hours | None) -> list[UserError]:
    errors = user_errors("input", rejected, fields={404: "id"})
    if hours is None:
        return errors
    return [UserError(field=hours.locate(e.field), code=e.code, message=e.message) for e in errors]


def _deletion_errors(rejected: UpstreamRejected) -> list[UserError]:
    """A deletion refused because members still refer to the record is one CONFLICT on the id, whose message
    names them (the service lists them as `members` entries, which are no field of the input)."""
    if rejected.status == 409 and rejected.errors and all(p.field == "members" for p in rejected.errors):
        return [UserError(field=["input", "id"], code="CONFLICT", message=rejected.detail)]
    return user_errors("input", rejected, fields={404: "id"})


def _json(value: Any) -> Any:
    """An input value as the service reads it: enums by their REST value, moments in ISO 8601."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return [_json(item) for item in value]
    return value


def _given(values: dict[str, Any]) -> dict[str, Any]:
    return {name: _json(value) for name, value in given(values).items()}


def _sent(values: dict[str, Any]) -> dict[str, Any]:
    return {name: _json(value) for name, value in sent(values).items()}


# ---- inputs and payloads ----------------------------------------------------------------------------------


@strawberry.input
class CreateMemberInput:
    id: strawberry.ID = strawberry.field(description="The user id the person's tokens carry (`sub`).")
    name: str = strawberry.field(description="1 to 200 characters.")
    role: MemberRole
    email: str | None = None
    team_id: strawberry.ID | None = None
    territory_ids: list[strawberry.ID] | None = strawberry.field(default=None, description="Up to 100.")
    products: list[str] | None = strawberry.field(default=None, description="Product codes, up to 100.")
    channels: list[Channel] | None = None
    time_zone: str | None = strawberry.field(default=None, description="IANA name; defaults to UTC.")
    working_hours: list[WorkingDayInput] | None = strawberry.field(
        default=None, description="Defaults to Monday to Friday, 09:00 to 18:00."
    )
    capacity: int | None = strawberry.field(default=None, description="0 or more; null: no limit.")
    status: MemberStatus | None = strawberry.field(default=None, description="Defaults to ACTIVE.")
    away_until: datetime | None = strawberry.field(default=None, description="With a UTC offset.")
    idempotency_key: str | None = strawberry.field(default=None, description=IDEMPOTENCY_KEY)


@strawberry.type
class CreateMemberPayload:
    member: Member | None
    user_errors: list[UserError]


@strawberry.input(
    description=(
        "Only the fields given change; null clears email, teamId, capacity and awayUntil (the others refuse it). "
        "A rep changes only their own status, awayUntil and workingHours."
    )
)
class UpdateMemberInput:
    id: strawberry.ID
    version: int | None = strawberry.field(default=None, description=VERSION)
    name: str | None = strawberry.UNSET
    email: str | None = strawberry.UNSET
    role: MemberRole | None = strawberry.UNSET
    team_id: strawberry.ID | None = strawberry.UNSET
    territory_ids: list[strawberry.ID] | None = strawberry.field(default=strawberry.UNSET, description="Replaces them.")
    products: list[str] | None = strawberry.field(default=strawberry.UNSET, description="Replaces them.")
    channels: list[Channel] | None = strawberry.field(default=strawberry.UNSET, description="Replaces them.")
    time_zone: str | None = strawberry.UNSET
    working_hours: list[WorkingDayInput] | None = strawberry.field(
        default=strawberry.UNSET, description="Replaces the whole week: a day left out becomes a day off."
    )
    capacity: int | None = strawberry.UNSET
    status: MemberStatus | None = strawberry.UNSET
    away_until: datetime | None = strawberry.UNSET


@strawberry.type
class UpdateMemberPayload:
    member: Member | None
    user_errors: list[UserError]


@strawberry.input
class CreateTeamInput:
    name: str = strawberry.field(description="1 to 100 characters, unique in the workspace ignoring case.")
    description: str | None = None
    head_id: strawberry.ID | None = strawberry.field(default=None, description="A member of the workspace.")
    idempotency_key: str | None = strawberry.field(default=None, description=IDEMPOTENCY_KEY)


@strawberry.type
class CreateTeamPayload:
    team: Team | None
    user_errors: list[UserError]


@strawberry.input(description="Only the fields given change; null clears description and headId.")
class UpdateTeamInput:
    id: strawberry.ID
    version: int | None = strawberry.field(default=None, description=VERSION)
    name: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    head_id: strawberry.ID | None = strawberry.UNSET


@strawberry.type
class UpdateTeamPayload:
    team: Team | None
    user_errors: list[UserError]


@strawberry.input
class DeleteTeamInput:
    id: strawberry.ID
    version: int | None = strawberry.field(default=None, description=VERSION)


@strawberry.type
class DeleteTeamPayload:
    deleted_id: strawberry.ID | None = strawberry.field(description="The deleted team's id; null on userErrors.")
    user_errors: list[UserError]


@strawberry.input
class CreateTerritoryInput:
    name: str = strawberry.field(description="1 to 100 characters, unique in the workspace ignoring case.")
    countries: list[str] | None = strawberry.field(default=None, description="ISO 3166-1 alpha-2 codes.")
    regions: list[str] | None = None
    cities: list[str] | None = None
    postal_prefixes: list[str] | None = strawberry.field(
        default=None, description="Starts of postal codes: Latin letters, digits, spaces and dashes."
    )
    idempotency_key: str | None = strawberry.field(default=None, description=IDEMPOTENCY_KEY)


@strawberry.type
class CreateTerritoryPayload:
    territory: Territory | None
    user_errors: list[UserError]


@strawberry.input(description="Only the fields given change; [] empties a list (an empty list matches any place).")
class UpdateTerritoryInput:
    id: strawberry.ID
    version: int | None = strawberry.field(default=None, description=VERSION)
    name: str | None = strawberry.UNSET
    countries: list[str] | None = strawberry.UNSET
    regions: list[str] | None = strawberry.UNSET
    cities: list[str] | None = strawberry.UNSET
    postal_prefixes: list[str] | None = strawberry.UNSET


@strawberry.type
class UpdateTerritoryPayload:
    territory: Territory | None
    user_errors: list[UserError]


@strawberry.input
class DeleteTerritoryInput:
    id: strawberry.ID
    version: int | None = strawberry.field(default=None, description=VERSION)


@strawberry.type
class DeleteTerritoryPayload:
    deleted_id: strawberry.ID | None = strawberry.field(description="The deleted territory's id; null on userErrors.")
    user_errors: list[UserError]


# ---- query resolvers --------------------------------------------------------------------------------------

# `GET /v1/members` parameters and the `members` arguments they come from, for error messages.
MEMBERS_ARGUMENTS = {"role": "role", "team_id": "teamId", "status": "status"}


async def resolve_me(info: Info) -> Member | None:
    try:
        record = await info.context.clients.members.me()
    except UpstreamRejected as rejected:
        # A service token has no member record: the service says so.
        refuse_query(rejected)
    return Member.from_record(record)


async def resolve_member(info: Info, id: strawberry.ID) -> Member | None:
    member_id = parse_uuid(id)
    if member_id is None:
        return None
    try:
        record = await info.context.loaders.member.load(member_id)
    except UpstreamRejected as rejected:
        refuse_query(rejected)
    return Member.from_record(record) if record else None


async def resolve_members(
    info: Info,
    first: int | None = DEFAULT_FIRST,
    after: str | None = None,
    role: MemberRole | None = None,
    team_id: strawberry.ID | None = None,
    status: MemberStatus | None = None,
) -> MemberConnection:
    client = info.context.clients.members

    async def fetch(limit: int, cursor: str | None) -> tuple[Sequence[MemberRecord], str | None]:
        try:
            page = await client.page(
                limit=limit,
                cursor=cursor,
                role=role.value if role else None,
                team_id=team_id,
                status=status.value if status else None,
            )
        except UpstreamRejected as rejected:
            refuse_query(rejected, MEMBERS_ARGUMENTS)
        return page.items, page.next_cursor

    result = await window(fetch, first=DEFAULT_FIRST if first is None else first, after=after)
    return MemberConnection(
        edges=[MemberEdge(cursor=cursor, node=Member.from_record(record)) for cursor, record in result.edges],
        page_info=PageInfo(has_next_page=result.has_next_page, end_cursor=result.end_cursor),
    )


async def resolve_team(info: Info, id: strawberry.ID) -> Team | None:
    team_id = parse_uuid(id)
    if team_id is None:
        return None
    try:
        record = await info.context.loaders.team.load(team_id)
    except UpstreamRejected as rejected:
        refuse_query(rejected)
    return Team.from_record(record) if record else None


async def resolve_teams(info: Info, first: int | None = DEFAULT_FIRST, after: str | None = None) -> TeamConnection:
    client = info.context.clients.teams

    async def fetch(limit: int, cursor: str | None) -> tuple[Sequence[TeamRecord], str | None]:
        try:
            page = await client.page(limit=limit, cursor=cursor)
        except UpstreamRejected as rejected:
            refuse_query(rejected)
        return page.items, page.next_cursor

    result = await window(fetch, first=DEFAULT_FIRST if first is None else first, after=after)
    return TeamConnection(
        edges=[TeamEdge(cursor=cursor, node=Team.from_record(record)) for cursor, record in result.edges],
        page_info=PageInfo(has_next_page=result.has_next_page, end_cursor=result.end_cursor),
    )


async def resolve_territory(info: Info, id: strawberry.ID) -> Territory | None:
    territory_id = parse_uuid(id)
    if territory_id is None:
        return None
    try:
        record = await info.context.clients.territories.get(territory_id)
    except UpstreamRejected as rejected:
        if rejected.status == 404:
            return None
        refuse_query(rejected)
    return Territory.from_record(record)


async def resolve_territories(
    info: Info, first: int | None = DEFAULT_FIRST, after: str | None = None
) -> TerritoryConnection:
    client = info.context.clients.territories

    async def fetch(limit: int, cursor: str | None) -> tuple[Sequence[TerritoryRecord], str | None]:
        try:
            page = await client.page(limit=limit, cursor=cursor)
        except UpstreamRejected as rejected:
            refuse_query(rejected)
        return page.items, page.next_cursor

    result = await window(fetch, first=DEFAULT_FIRST if first is None else first, after=after)
    return TerritoryConnection(
        edges=[TerritoryEdge(cursor=cursor, node=Territory.from_record(record)) for cursor, record in result.edges],
        page_info=PageInfo(has_next_page=result.has_next_page, end_cursor=result.end_cursor),
    )


# ---- mutation resolvers -----------------------------------------------------------------------------------


def _member_fields(input: CreateMemberInput | UpdateMemberInput) -> dict[str, Any]:
    """The member fields of the input by their REST names, `working_hours` left out (see `Hours`)."""
    return {
        "name": input.name,
        "email": input.email,
        "role": input.role,
        "team_id": input.team_id,
        "territory_ids": input.territory_ids,
        "products": input.products,
        "channels": input.channels,
        "time_zone": input.time_zone,
        "capacity": input.capacity,
        "status": input.status,
        "away_until": input.away_until,
    }


async def create_member(info: Info, input: CreateMemberInput) -> CreateMemberPayload:
    body = {"id": input.id, **_given(_member_fields(input))}
    hours = Hours.of(input.working_hours) if input.working_hours is not None else None
    if hours is not None:
        body["working_hours"] = hours.week
    try:
        record = await info.context.clients.members.create(body, idempotency_key=input.idempotency_key)
    except UpstreamRejected as rejected:
        return CreateMemberPayload(member=None, user_errors=_member_errors(rejected, hours))
    return CreateMemberPayload(member=Member.from_record(record), user_errors=[])


async def update_member(info: Info, input: UpdateMemberInput) -> UpdateMemberPayload:
    member_id = parse_uuid(input.id)
    if member_id is None:
        return UpdateMemberPayload(member=None, user_errors=[no_such("input", "id", "member", input.id)])
    changes = _sent(_member_fields(input))
    hours = None
    if input.working_hours is None:
        changes["working_hours"] = None  # refused by the service: a member always has working hours
    elif input.working_hours is not strawberry.UNSET:
        hours = Hours.of(input.working_hours)
        changes["working_hours"] = hours.week
    try:
        record = await info.context.clients.members.update(member_id, changes, version=input.version)
    except UpstreamRejected as rejected:
        return UpdateMemberPayload(member=None, user_errors=_member_errors(rejected, hours))
    return UpdateMemberPayload(member=Member.from_record(record), user_errors=[])


async def create_team(info: Info, input: CreateTeamInput) -> CreateTeamPayload:
    body = _given({"name": input.name, "description": input.description, "head_id": input.head_id})
    try:
        record = await info.context.clients.teams.create(body, idempotency_key=input.idempotency_key)
    except UpstreamRejected as rejected:
        return CreateTeamPayload(team=None, user_errors=user_errors("input", rejected))
    return CreateTeamPayload(team=Team.from_record(record), user_errors=[])


async def update_team(info: Info, input: UpdateTeamInput) -> UpdateTeamPayload:
    team_id = parse_uuid(input.id)
    if team_id is None:
        return UpdateTeamPayload(team=None, user_errors=[no_such("input", "id", "team", input.id)])
    changes = _sent({"name": input.name, "description": input.description, "head_id": input.head_id})
    try:
        record = await info.context.clients.teams.update(team_id, changes, version=input.version)
    except UpstreamRejected as rejected:
        return UpdateTeamPayload(team=None, user_errors=user_errors("input", rejected, fields={404: "id"}))
    return UpdateTeamPayload(team=Team.from_record(record), user_errors=[])


async def delete_team(info: Info, input: DeleteTeamInput) -> DeleteTeamPayload:
    team_id = parse_uuid(input.id)
    if team_id is None:
        return DeleteTeamPayload(deleted_id=None, user_errors=[no_such("input", "id", "team", input.id)])
    try:
        await info.context.clients.teams.delete(team_id, version=input.version)
    except UpstreamRejected as rejected:
        return DeleteTeamPayload(deleted_id=None, user_errors=_deletion_errors(rejected))
    return DeleteTeamPayload(deleted_id=_id(team_id), user_errors=[])


def _territory_fields(input: CreateTerritoryInput | UpdateTerritoryInput) -> dict[str, Any]:
    return {
        "name": input.name,
        "countries": input.countries,
        "regions": input.regions,
        "cities": input.cities,
        "postal_prefixes": input.postal_prefixes,
    }


async def create_territory(info: Info, input: CreateTerritoryInput) -> CreateTerritoryPayload:
    body = _given(_territory_fields(input))
    try:
        record = await info.context.clients.territories.create(body, idempotency_key=input.idempotency_key)
    except UpstreamRejected as rejected:
        return CreateTerritoryPayload(territory=None, user_errors=user_errors("input", rejected))
    return CreateTerritoryPayload(territory=Territory.from_record(record), user_errors=[])


async def update_territory(info: Info, input: UpdateTerritoryInput) -> UpdateTerritoryPayload:
    territory_id = parse_uuid(input.id)
    if territory_id is None:
        return UpdateTerritoryPayload(territory=None, user_errors=[no_such("input", "id", "territory", input.id)])
    changes = _sent(_territory_fields(input))
    try:
        record = await info.context.clients.territories.update(territory_id, changes, version=input.version)
    except UpstreamRejected as rejected:
        errors = user_errors("input", rejected, fields={404: "id"})
        return UpdateTerritoryPayload(territory=None, user_errors=errors)
    return UpdateTerritoryPayload(territory=Territory.from_record(record), user_errors=[])


async def delete_territory(info: Info, input: DeleteTerritoryInput) -> DeleteTerritoryPayload:
    territory_id = parse_uuid(input.id)
    if territory_id is None:
        return DeleteTerritoryPayload(deleted_id=None, user_errors=[no_such("input", "id", "territory", input.id)])
    try:
        await info.context.clients.territories.delete(territory_id, version=input.version)
    except UpstreamRejected as rejected:
        return DeleteTerritoryPayload(deleted_id=None, user_errors=_deletion_errors(rejected))
    return DeleteTerritoryPayload(deleted_id=_id(territory_id), user_errors=[])


# Resolvers are passed in rather than decorated: the decorator-with-arguments form is untyped for mypy.
@strawberry.type
class RosterQuery:
    me: Member | None = strawberry.field(
        resolver=resolve_me,
        description="Your own member record, made from your token the first time you ask (null for a service).",
    )
    member: Member | None = strawberry.field(
        resolver=resolve_member, description="The member with this id, or null if the workspace has none such."
    )
    members: MemberConnection | None = strawberry.field(
        resolver=resolve_members,
        description=(
            f"The workspace's members in id order, with every filter given holding. `first` is at most {MAX_FIRST}."
        ),
    )
    team: Team | None = strawberry.field(
        resolver=resolve_team, description="The team with this id, or null if the workspace has none such."
    )
    teams: TeamConnection | None = strawberry.field(
        resolver=resolve_teams,
        description=f"The workspace's teams, oldest first. `first` is at most {MAX_FIRST}.",
    )
    territory: Territory | None = strawberry.field(
        resolver=resolve_territory, description="The territory with this id, or null if the workspace has none such."
    )
    territories: TerritoryConnection | None = strawberry.field(
        resolver=resolve_territories,
        description=f"The workspace's territories, oldest first. `first` is at most {MAX_FIRST}.",
    )


@strawberry.type
class RosterMutation:
    create_member: CreateMemberPayload = strawberry.mutation(
        resolver=create_member,
        description=(
            "Adds a person to the roster under their user id (admins and heads of sales); a known id is CONFLICT."
        ),
    )
    update_member: UpdateMemberPayload = strawberry.mutation(
        resolver=update_member,
        description=(
            "Changes the fields given (admins and heads of sales; a rep: their own status, awayUntil and "
            "workingHours, else FORBIDDEN on each field refused)."
        ),
    )
    create_team: CreateTeamPayload = strawberry.mutation(
        resolver=create_team, description="Adds a team (admins and heads of sales); a taken name is CONFLICT."
    )
    update_team: UpdateTeamPayload = strawberry.mutation(
        resolver=update_team, description="Changes a team's name, description or head (admins and heads of sales)."
    )
    delete_team: DeleteTeamPayload = strawberry.mutation(
        resolver=delete_team,
        description=(
            "Deletes a team nobody is in (admins and heads of sales); with members still in it, CONFLICT naming them."
        ),
    )
    create_territory: CreateTerritoryPayload = strawberry.mutation(
        resolver=create_territory,
        description="Adds a territory (admins and heads of sales); a taken name is CONFLICT.",
    )
    update_territory: UpdateTerritoryPayload = strawberry.mutation(
        resolver=update_territory, description="Changes a territory (admins and heads of sales)."
    )
    delete_territory: DeleteTerritoryPayload = strawberry.mutation(
        resolver=delete_territory,
        description="Deletes a territory no member covers (admins and heads of sales); else CONFLICT naming them.",
    )
