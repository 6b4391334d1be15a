"""The sales team: members (people and their role in the sales process), teams and territories.

What a roster entry may hold (working hours, time zones, countries, postal prefixes), the queries (each scoped
to the caller's workspace), and the writes, each publishing its member.* / team.* event in the transaction that
makes the change. `covers` says whether a territory covers a place; distribution matches leads with it.

Members are never deleted: someone who left becomes `inactive`. Teams and territories are deleted only when no
member refers to them. A member's team and territories are read `FOR KEY SHARE` when it is written, and a team
or territory is locked `FOR UPDATE` before it is deleted, so the two cannot cross: a deletion waits for a member
write in flight and then sees its reference, and a write that waits for a deletion then finds no team. A change
(`FOR NO KEY UPDATE`) does not hold up member writes that name the team.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
import zoneinfo
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import asyncpg
import phonenumbers
from pydantic_core import PydanticCustomError

from services.common.auth import Principal, Role
from services.common.db import Connection
from services.common.ids import new_id
from services.common.outbox import publish
from services.common.problems import Conflict, Forbidden, InvalidField, InvalidFields
from services.contracts.members import (
    MemberCreatedV1,
    MemberUpdatedV1,
    TeamCreatedV1,
    TeamDeletedV1,
    TeamUpdatedV1,
)
from services.leads import assignment_queue
from services.leads.models import DEFAULT_WORKING_HOURS_JSON

MEMBER_COLUMNS = (
    "workspace_id, id, name, email, role, team_id, territory_ids, products, channels, time_zone, working_hours, "
    "capacity, status, away_until, created_at, updated_at, version"
)
TEAM_COLUMNS = "workspace_id, id, name, description, head_id, created_at, updated_at, version"
TERRITORY_COLUMNS = (
    "workspace_id, id, name, countries, regions, cities, postal_prefixes, created_at, updated_at, version"
)
# What a member may set on a create and change on a PATCH, in the order the columns are written.
MEMBER_FIELDS = (
    "name", "email", "role", "team_id", "territory_ids", "products", "channels", "time_zone", "working_hours",
    "capacity", "status", "away_until",
)
TEAM_FIELDS = ("name", "description", "head_id")
TERRITORY_FIELDS = ("name", "countries", "regions", "cities", "postal_prefixes")
# A rep may change only these, and only on their own member record.
REP_EDITABLE = frozenset({"status", "away_until", "working_hours"})
# Member changes that may let someone take a queued lead (services.leads.distribution).
REQUEUE_ON = frozenset({"role", "team_id", "time_zone", "working_hours", "capacity", "status"})
# How many of the members still referring to a team or territory a refused deletion names.
NAMED_REFERRERS = 20


class MemberRole(StrEnum):
    """The role in the sales process (the token's auth role only says what someone may do in Voronka)."""

    hunter = "hunter"  # works new leads
    closer = "closer"  # works qualified leads and deals
    farmer = "farmer"  # works existing clients
    head_of_sales = "head_of_sales"
    admin = "admin"


class MemberStatus(StrEnum):
    active = "active"
    away = "away"
    # Someone who left: they keep their history, and get no new work.
    inactive = "inactive"


# The member a token's user becomes on their first GET /v1/members/me.
ROLE_FROM_AUTH: dict[Role, MemberRole] = {
    Role.admin: MemberRole.admin,
    Role.head_of_sales: MemberRole.head_of_sales,
    Role.rep: MemberRole.hunter,
}


# ------------------------------------------------------------------------------------------------ who may change it


def require_manager(principal: Principal, what: str) -> None:
    """Admins and heads of sales shape the team; reps and services only read it."""
    if principal.role not in (Role.admin, Role.head_of_sales):
        raise Forbidden(f"Only admins and heads of sales change {what}.")


def check_member_change(principal: Principal, member_id: uuid.UUID, fields: Iterable[str]) -> None:
    """403 naming each field the caller may not change on this member: a rep changes only their own
    status, away_until and working_hours; a service changes nothing."""
    if principal.role in (Role.admin, Role.head_of_sales):
        return
    fields = sorted(fields)
    if principal.role is Role.rep and member_id == principal.user_id:
        refused = [f for f in fields if f not in REP_EDITABLE]
        if not refused:
            return
        message = "A rep changes only their own status, away_until and working_hours."
    elif principal.role is Role.rep:
        refused = fields
        message = "A rep changes only their own member record (status, away_until and working_hours)."
    else:
        refused = fields
        message = "Only admins and heads of sales change members."
    raise Forbidden(message, errors=[_error(f, "forbidden", message) for f in refused])


# ------------------------------------------------------------------------------------------------ values


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_INTERVALS_PER_DAY = 12
_TIME_OF_DAY = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]|24:00")
_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)*")
_POSTAL_PREFIX = re.compile(r"[A-Z0-9][A-Z0-9 \-]*")
_INTERVAL_HELP = 'An interval is [start, end] in local time, e.g. ["09:00", "18:00"].'


def default_working_hours() -> dict[str, list[list[str]]]:
    """Monday to Friday, 09:00-18:00 (a fresh copy each time)."""
    hours: dict[str, list[list[str]]] = json.loads(DEFAULT_WORKING_HOURS_JSON)
    return hours


def _interval_problem(interval: Any) -> tuple[str, str] | None:
    """Why `interval` is not a [start, end) pair of local times, as (code, message); None when it is."""
    if not (isinstance(interval, list) and len(interval) == 2 and all(isinstance(t, str) for t in interval)):
        return "invalid_interval", _INTERVAL_HELP
    start, end = interval
    if not (_TIME_OF_DAY.fullmatch(start) and _TIME_OF_DAY.fullmatch(end)):
        return "invalid_time", "Times are HH:MM, from 00:00 to 24:00. " + _INTERVAL_HELP
    # Zero-padded HH:MM compare as text in time order.
    if start >= end:
        return "empty_interval", (
            "The start must be before the end. Hours past midnight are two intervals: "
            '["22:00", "24:00"] on one day and ["00:00", "02:00"] on the next.'
        )
    return None


def check_working_hours(value: Mapping[str, Any], field: str = "working_hours") -> dict[str, list[list[str]]]:
    """The weekly hours in stored form: all seven days, each day's intervals in time order.

    `value` maps weekdays (mon..sun) to lists of [start, end) local times; a day left out is a day off.
    Raises InvalidFields naming each bad day or interval as sent (`working_hours.mon[1]`)."""
    errors: list[dict[str, str]] = []
    hours: dict[str, list[list[str]]] = {day: [] for day in WEEKDAYS}
    for day, intervals in value.items():
        where = f"{field}.{day}"
        if day not in WEEKDAYS:
            errors.append(_error(where, "unknown_day", f"Days are named {', '.join(WEEKDAYS)}."))
            continue
        if not isinstance(intervals, list):
            errors.append(_error(where, "invalid_day", "A list of [start, end] intervals; [] for a day off."))
            continue
        if len(intervals) > MAX_INTERVALS_PER_DAY:
            errors.append(_error(where, "too_long", f"At most {MAX_INTERVALS_PER_DAY} intervals a day."))
            continue
        sent: list[tuple[str, str, int]] = []
        for i, interval in enumerate(intervals):
            problem = _interval_problem(interval)
            if problem is None:
                sent.append((interval[0], interval[1], i))
            else:
                errors.append(_error(f"{where}[{i}]", *problem))
        # In time order, an interval that starts before the latest end so far overlaps one before it.
        reach = ""
        for start, end, i in sorted(sent):
            if start < reach:
                errors.append(_error(f"{where}[{i}]", "overlap", "The intervals of a day must not overlap."))
            reach = max(reach, end)
        hours[day] = [[start, end] for start, end, _ in sorted(sent)]
    if errors:
        raise InvalidFields(errors)
    return hours


@functools.cache
def _zone_names() -> frozenset[str]:
    # Read once per process: a scan of the time zone database (the tzdata package and the system's), ~30 ms.
    # `localtime` is the machine's own zone file on some systems, not an IANA name.
    return frozenset(zoneinfo.available_timezones()) - {"localtime"}


def check_time_zone(name: str) -> str:
    """An IANA time zone name exactly as the database spells it (Europe/Moscow), for pydantic."""
    if not (len(name) <= 64 and _ZONE_NAME.fullmatch(name) and name in _zone_names()):
        raise PydanticCustomError(
            "invalid_time_zone", "Not an IANA time zone name, e.g. Europe/Moscow, America/New_York or UTC."
        )
    return name


def check_country(code: str) -> str:
    """An ISO 3166-1 alpha-2 country code, upper-cased, for pydantic (one libphonenumber knows)."""
    country = code.strip().upper()
    if country not in phonenumbers.SUPPORTED_REGIONS:
        raise PydanticCustomError("invalid_country", "Not an ISO 3166-1 alpha-2 country code, e.g. DE, RU or US.")
    return country


def check_postal_prefix(prefix: str) -> str:
    """The start of postal codes, upper-cased with its spacing tidied: letters, digits, spaces and dashes."""
    tidy = " ".join(prefix.split()).upper()
    if not _POSTAL_PREFIX.fullmatch(tidy):
        raise PydanticCustomError(
            "invalid_postal_prefix",
            "A postal code prefix holds Latin letters, digits, spaces and dashes, and starts with a letter or digit.",
        )
    return tidy


def tidy_place(name: str) -> str:
    """A region or city as written, with its spacing tidied."""
    return " ".join(name.split())


def distinct(values: Iterable[Any], key: Callable[[Any], Any] | None = None) -> list[Any]:
    """The values without repeats (by `key`, when given), in their first order."""
    seen: set[Any] = set()
    kept = []
    for value in values:
        marker = key(value) if key else value
        if marker not in seen:
            seen.add(marker)
            kept.append(value)
    return kept


def _error(field: str, code: str, message: str) -> dict[str, str]:
    return {"field": field, "code": code, "message": message}


# ------------------------------------------------------------------------------------------------ covers


def _place_key(name: str) -> str:
    return " ".join(name.split()).casefold()


def _postal_key(code: str) -> str:
    # "SW1A 1AA", "sw1a1aa" and "SW1A-1AA" are one code: spaces and dashes do not count.
    return "".join(c for c in code if not c.isspace() and c != "-").upper()


@dataclass(frozen=True, slots=True)
class Area:
    """What a territory covers, in the form `covers` compares: keys without case or spacing."""

    countries: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()
    cities: frozenset[str] = frozenset()
    postal_prefixes: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        *,
        countries: Iterable[str] = (),
        regions: Iterable[str] = (),
        cities: Iterable[str] = (),
        postal_prefixes: Iterable[str] = (),
    ) -> Area:
        return cls(
            countries=frozenset(c.strip().upper() for c in countries),
            regions=frozenset(_place_key(r) for r in regions),
            cities=frozenset(_place_key(c) for c in cities),
            postal_prefixes=tuple(p for p in distinct(_postal_key(p) for p in postal_prefixes) if p),
        )

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | asyncpg.Record) -> Area:
        return cls.of(
            countries=row["countries"], regions=row["regions"], cities=row["cities"],
            postal_prefixes=row["postal_prefixes"],
        )


def covers(
    territory: Area, *, country: str | None, region: str | None, city: str | None, postal_code: str | None
) -> bool:
    """Whether the territory covers a place: every list the territory fills must match (ignoring case and
    spacing), and an empty list matches anything. A place without the value a filled list asks about is not
    covered: a territory of cities does not cover a lead whose city is unknown."""
    if territory.countries and (country is None or country.strip().upper() not in territory.countries):
        return False
    if territory.regions and (region is None or _place_key(region) not in territory.regions):
        return False
    if territory.cities and (city is None or _place_key(city) not in territory.cities):
        return False
    if territory.postal_prefixes:
        code = _postal_key(postal_code or "")
        if not (code and any(code.startswith(prefix) for prefix in territory.postal_prefixes)):
            return False
    return True


# ------------------------------------------------------------------------------------------------ members


def member_snapshot(row: asyncpg.Record) -> dict[str, Any]:
    """A member row as the fields of its events (`member_id`, `member_version`)."""
    values = dict(row)
    values["member_id"] = values.pop("id")
    values["member_version"] = values.pop("version")
    return values


class MemberRepository:
    """A workspace's members. The roster is the workspace's to read (reps included), so rows are scoped by
    workspace alone; who may change what is checked before a write (`check_member_change`)."""

    def __init__(self, conn: Connection, principal: Principal) -> None:
        self.conn = conn
        self.principal = principal
        self.workspace_id = principal.workspace_id

    async def get(self, member_id: uuid.UUID, *, for_update: bool = False) -> asyncpg.Record | None:
        lock = " FOR UPDATE" if for_update else ""
        row: asyncpg.Record | None = await self.conn.fetchrow(
            f"SELECT {MEMBER_COLUMNS} FROM leads.members WHERE workspace_id = $1 AND id = $2{lock}",
            self.workspace_id, member_id,
        )
        return row

    async def page(
        self,
        limit: int,
        after: uuid.UUID | None,
        *,
        role: str | None = None,
        team_id: uuid.UUID | None = None,
        status: str | None = None,
    ) -> list[asyncpg.Record]:
        """In id order, keyset-paginated on the primary key (a workspace has tens or hundreds of members)."""
        rows: list[asyncpg.Record] = await self.conn.fetch(
            f"""
            SELECT {MEMBER_COLUMNS} FROM leads.members
            WHERE workspace_id = $1 AND ($2::uuid IS NULL OR id > $2) AND ($3::text IS NULL OR role = $3)
              AND ($4::uuid IS NULL OR team_id = $4) AND ($5::text IS NULL OR status = $5)
            ORDER BY id LIMIT $6
            """,
            self.workspace_id, after, role, team_id, status, limit,
        )
        return rows

    async def add(self, member_id: uuid.UUID, values: Mapping[str, Any]) -> asyncpg.Record | None:
        """Inserts a member; None when the workspace already has one with this id."""
        await check_references(self.conn, self.workspace_id, values)
        params = ", ".join(f"${i}" for i in range(3, 3 + len(MEMBER_FIELDS)))
        row: asyncpg.Record | None = await self.conn.fetchrow(
            f"""
            INSERT INTO leads.members (workspace_id, id, {", ".join(MEMBER_FIELDS)}) VALUES ($1, $2, {params})
            ON CONFLICT (workspace_id, id) DO NOTHING
            RETURNING {MEMBER_COLUMNS}
            """,
            self.workspace_id, member_id, *(values[f] for f in MEMBER_FIELDS),
        )
        if row is not None:
            await self._publish_created(row)
        return row

    async def provision(self) -> asyncpg.Record:
        """The caller's member record, created from their token the first time they ask for it.

        Two first calls at once both insert with ON CONFLICT DO NOTHING: the second waits for the first to
        commit, inserts nothing, and then reads what the first created (a new statement sees the commit).
        Only the one that inserted publishes member.created."""
        user_id = self.principal.user_id
        known = await self.get(user_id)
        if known is not None:
            return known
        values: dict[str, Any] = {
            "name": f"Member {str(user_id)[:8]}", "email": None, "role": ROLE_FROM_AUTH[self.principal.role].value,
            "team_id": None, "territory_ids": [], "products": [], "channels": [], "time_zone": "UTC",
            "working_hours": default_working_hours(), "capacity": None, "status": MemberStatus.active.value,
            "away_until": None,
        }
        row = await self.add(user_id, values)
        if row is None:
            row = await self.get(user_id)
        assert row is not None  # members are never deleted
        return row

    async def update(self, current: asyncpg.Record, values: Mapping[str, Any]) -> asyncpg.Record:
        """Applies `values` to a member the caller has locked; returns it unchanged (same version, no event)
        when nothing differs."""
        changed = {f: v for f, v in values.items() if v != current[f]}
        if not changed:
            return current
        await check_references(self.conn, self.workspace_id, changed)
        row = await _update(self.conn, "members", MEMBER_COLUMNS, current, changed)
        await publish(
            self.conn,
            MemberUpdatedV1(**member_snapshot(row), changed=sorted(changed), updated_by=self.principal.user_id),
            workspace_id=self.workspace_id, subject=row["id"],
        )
        if REQUEUE_ON & changed.keys():
            # Someone may be able to take the leads waiting in a rule's queue now: try them again.
            await assignment_queue.requeue(self.conn, self.workspace_id)
        return row

    async def _publish_created(self, row: asyncpg.Record) -> None:
        await publish(
            self.conn,
            MemberCreatedV1(**member_snapshot(row), created_by=self.principal.user_id),
            workspace_id=self.workspace_id, subject=row["id"],
        )


async def check_references(conn: Connection, workspace_id: uuid.UUID, values: Mapping[str, Any]) -> None:
    """422 naming `team_id` or `territory_ids[i]` when they are not the workspace's. The team and territories
    are read FOR KEY SHARE: they cannot be deleted until this transaction ends."""
    errors: list[dict[str, str]] = []
    team_id = values.get("team_id")
    if team_id is not None:
        found = await conn.fetchval(
            "SELECT id FROM leads.teams WHERE workspace_id = $1 AND id = $2 FOR KEY SHARE", workspace_id, team_id
        )
        if found is None:
            errors.append(_error("team_id", "unknown_team", f"The workspace has no team {team_id}."))
    territory_ids: Sequence[uuid.UUID] = values.get("territory_ids") or ()
    if territory_ids:
        rows = await conn.fetch(
            """
            SELECT id FROM leads.territories WHERE workspace_id = $1 AND id = ANY($2::uuid[])
            ORDER BY id FOR KEY SHARE
            """,
            workspace_id, list(territory_ids),
        )
        known = {r["id"] for r in rows}
        errors += [
            _error(f"territory_ids[{i}]", "unknown_territory", f"The workspace has no territory {territory_id}.")
            for i, territory_id in enumerate(territory_ids) if territory_id not in known
        ]
    if errors:
        raise InvalidFields(errors)


async def _update(
    conn: Connection, table: str, columns: str, current: asyncpg.Record, changed: Mapping[str, Any]
) -> asyncpg.Record:
    """Writes `changed` (column names from this module's field lists) to a row the caller has locked."""
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(changed, start=3))
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""
        UPDATE leads.{table} SET {assignments}, updated_at = now(), version = version + 1
        WHERE workspace_id = $1 AND id = $2
        RETURNING {columns}
        """,
        current["workspace_id"], current["id"], *changed.values(),
    )
    assert row is not None  # the caller holds the row lock
    return row


def _still_referred(rows: Sequence[asyncpg.Record], count: int, where: str, each: str, fix: str) -> Conflict:
    """409 naming the members that still refer to a team or territory (the first NAMED_REFERRERS of them)."""
    named = ", ".join(f"{r['name']} ({r['id']})" for r in rows)
    more = f" and {count - len(rows)} more" if count > len(rows) else ""
    return Conflict(
        f"Members still {where} ({count}): {named}{more}. {fix}",
        errors=[
            {"field": "members", "code": "in_use", "member_id": str(r["id"]), "message": f"{r['name']} {each}."}
            for r in rows
        ],
    )


# ------------------------------------------------------------------------------------------------ teams


def team_snapshot(row: asyncpg.Record) -> dict[str, Any]:
    values = dict(row)
    values["team_id"] = values.pop("id")
    values["team_version"] = values.pop("version")
    return values


def name_taken(kind: str, name: str) -> Conflict:
    return Conflict(
        f"The workspace already has a {kind} named {name!r} (names are compared ignoring case).",
        errors=[_error("name", "taken", "Choose another name.")],
    )


class TeamRepository:
    """A workspace's teams, scoped by workspace alone (the roster is the workspace's to read)."""

    def __init__(self, conn: Connection, principal: Principal) -> None:
        self.conn = conn
        self.principal = principal
        self.workspace_id = principal.workspace_id

    async def get(
        self, team_id: uuid.UUID, *, for_update: bool = False, for_delete: bool = False
    ) -> asyncpg.Record | None:
        lock = " FOR UPDATE" if for_delete else " FOR NO KEY UPDATE" if for_update else ""
        row: asyncpg.Record | None = await self.conn.fetchrow(
            f"SELECT {TEAM_COLUMNS} FROM leads.teams WHERE workspace_id = $1 AND id = $2{lock}",
            self.workspace_id, team_id,
        )
        return row

    async def page(self, limit: int, after: uuid.UUID | None) -> list[asyncpg.Record]:
        """Oldest first (ids are UUIDv7), keyset-paginated on the primary key."""
        rows: list[asyncpg.Record] = await self.conn.fetch(
            f"""
            SELECT {TEAM_COLUMNS} FROM leads.teams WHERE workspace_id = $1 AND ($2::uuid IS NULL OR id > $2)
            ORDER BY id LIMIT $3
            """,
            self.workspace_id, after, limit,
        )
        return rows

    async def add(self, values: Mapping[str, Any]) -> asyncpg.Record:
        """A new team; 409 naming `name` when the workspace has one of that name (in any case)."""
        await self._check_head(values.get("head_id"))
        row: asyncpg.Record | None = await self.conn.fetchrow(
            f"""
            INSERT INTO leads.teams (workspace_id, id, name, description, head_id) VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT DO NOTHING
            RETURNING {TEAM_COLUMNS}
            """,
            self.workspace_id, new_id(), *(values[f] for f in TEAM_FIELDS),
        )
        if row is None:
            raise name_taken("team", values["name"])
        await publish(
            self.conn, TeamCreatedV1(**team_snapshot(row), created_by=self.principal.user_id),
            workspace_id=self.workspace_id, subject=row["id"],
        )
        return row

    async def update(self, current: asyncpg.Record, values: Mapping[str, Any]) -> asyncpg.Record:
        """Applies `values` to a locked team; unchanged (no new version, no event) when nothing differs."""
        changed = {f: v for f, v in values.items() if v != current[f]}
        if not changed:
            return current
        if "head_id" in changed:
            await self._check_head(changed["head_id"])
        try:
            row = await _update(self.conn, "teams", TEAM_COLUMNS, current, changed)
        except asyncpg.UniqueViolationError as exc:
            raise name_taken("team", changed["name"]) from exc
        await publish(
            self.conn,
            TeamUpdatedV1(**team_snapshot(row), changed=sorted(changed), updated_by=self.principal.user_id),
            workspace_id=self.workspace_id, subject=row["id"],
        )
        return row

    async def delete(self, team: asyncpg.Record) -> None:
        """Deletes a locked team nobody is in; 409 naming the members still in it."""
        count = await self.conn.fetchval(
            "SELECT count(*) FROM leads.members WHERE workspace_id = $1 AND team_id = $2",
            self.workspace_id, team["id"],
        )
        if count:
            rows = await self.conn.fetch(
                "SELECT id, name FROM leads.members WHERE workspace_id = $1 AND team_id = $2 ORDER BY id LIMIT $3",
                self.workspace_id, team["id"], NAMED_REFERRERS,
            )
            raise _still_referred(
                rows, count, "in this team", "is still in this team",
                "Move them to another team or none first (PATCH /v1/members/{id} with team_id); members are never "
                "deleted, so this holds for inactive ones too.",
            )
        await self.conn.execute("DELETE FROM leads.teams WHERE workspace_id = $1 AND id = $2", *_key(team))
        await publish(
            self.conn,
            TeamDeletedV1(
                team_id=team["id"], workspace_id=self.workspace_id, name=team["name"],
                deleted_by=self.principal.user_id, deleted_at=datetime.now(UTC),
            ),
            workspace_id=self.workspace_id, subject=team["id"],
        )

    async def _check_head(self, head_id: uuid.UUID | None) -> None:
        # Members are never deleted, so a head found now stays a member.
        if head_id is not None and await MemberRepository(self.conn, self.principal).get(head_id) is None:
            raise InvalidField("head_id", f"The workspace has no member {head_id}.", "unknown_member")


def _key(row: asyncpg.Record) -> tuple[uuid.UUID, uuid.UUID]:
    return row["workspace_id"], row["id"]


# ------------------------------------------------------------------------------------------------ territories


class TerritoryRepository:
    """A workspace's territories, scoped by workspace alone."""

    def __init__(self, conn: Connection, principal: Principal) -> None:
        self.conn = conn
        self.workspace_id = principal.workspace_id

    async def get(
        self, territory_id: uuid.UUID, *, for_update: bool = False, for_delete: bool = False
    ) -> asyncpg.Record | None:
        lock = " FOR UPDATE" if for_delete else " FOR NO KEY UPDATE" if for_update else ""
        row: asyncpg.Record | None = await self.conn.fetchrow(
            f"SELECT {TERRITORY_COLUMNS} FROM leads.territories WHERE workspace_id = $1 AND id = $2{lock}",
            self.workspace_id, territory_id,
        )
        return row

    async def page(self, limit: int, after: uuid.UUID | None) -> list[asyncpg.Record]:
        """Oldest first (ids are UUIDv7), keyset-paginated on the primary key."""
        rows: list[asyncpg.Record] = await self.conn.fetch(
            f"""
            SELECT {TERRITORY_COLUMNS} FROM leads.territories
            WHERE workspace_id = $1 AND ($2::uuid IS NULL OR id > $2)
            ORDER BY id LIMIT $3
            """,
            self.workspace_id, after, limit,
        )
        return rows

    async def add(self, values: Mapping[str, Any]) -> asyncpg.Record:
        """A new territory; 409 naming `name` when the workspace has one of that name (in any case)."""
        row: asyncpg.Record | None = await self.conn.fetchrow(
            f"""
            INSERT INTO leads.territories (workspace_id, id, name, countries, regions, cities, postal_prefixes)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT DO NOTHING
            RETURNING {TERRITORY_COLUMNS}
            """,
            self.workspace_id, new_id(), *(values[f] for f in TERRITORY_FIELDS),
        )
        if row is None:
            raise name_taken("territory", values["name"])
        return row

    async def update(self, current: asyncpg.Record, values: Mapping[str, Any]) -> asyncpg.Record:
        changed = {f: v for f, v in values.items() if v != current[f]}
        if not changed:
            return current
        try:
            return await _update(self.conn, "territories", TERRITORY_COLUMNS, current, changed)
        except asyncpg.UniqueViolationError as exc:
            raise name_taken("territory", changed["name"]) from exc

    async def delete(self, territory: asyncpg.Record) -> None:
        """Deletes a locked territory no member covers; 409 naming the members that still do."""
        covering = "workspace_id = $1 AND territory_ids @> ARRAY[$2::uuid]"
        count = await self.conn.fetchval(f"SELECT count(*) FROM leads.members WHERE {covering}", *_key(territory))
        if count:
            rows = await self.conn.fetch(
                f"SELECT id, name FROM leads.members WHERE {covering} ORDER BY id LIMIT $3",
                *_key(territory), NAMED_REFERRERS,
            )
            raise _still_referred(
                rows, count, "covering this territory", "still covers this territory",
                "Take it out of their territory_ids first (PATCH /v1/members/{id}).",
            )
        await self.conn.execute("DELETE FROM leads.territories WHERE workspace_id = $1 AND id = $2", *_key(territory))
