"""Queries on leads. Every read goes through `_visible`, which scopes rows to the caller (`visible_to`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from services.common.auth import Principal
from services.common.db import Connection
from services.common.ids import first_id_at
from services.common.scoping import visible_to

COLUMNS = (
    "id, workspace_id, name, email, phone, company, position, notes, tags, custom, source, source_id, channel, "
    "utm, owner_id, hunter_id, assignment_state, assignment_rule_id, status, disqualification_reason, merged_into_id, "
    "created_by, created_at, updated_at, status_changed_at, version"
)

ID_SLACK = timedelta(seconds=1)

# Sort name -> (column, descending). Each has an index that yields its order (models.Lead).
SORTS: dict[str, tuple[str, bool]] = {
    "-created_at": ("id", True),
    "created_at": ("id", False),
    "-updated_at": ("updated_at", True),
    "updated_at": ("updated_at", False),
}


@dataclass(frozen=True)
class LeadFilter:
    status: list[str] | None = None
    owner_id: uuid.UUID | None = None
    unassigned: bool = False
    source_id: uuid.UUID | None = None
    channel: str | None = None
    tag: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    # Lower-cased; matched as a substring of name, email, phone and company (trigram index).
    text: str | None = None
    # By the stored score (leads.lead_scores): a lead not scored yet matches neither.
    grade: list[str] | None = None
    temperature: list[str] | None = None


@dataclass(frozen=True)
class Position:
    """Where the previous page ended: the sort key and id of its last lead."""

    key: Any
    id: uuid.UUID


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class LeadRepository:
    def __init__(self, conn: Connection, principal: Principal) -> None:
        self.conn = conn
        self.principal = principal

    def _visible(self, first_param: int) -> tuple[str, list[Any]]:
        """The caller's workspace; for a rep, only the leads they own."""
        return visible_to(self.principal, first_param)

    async def get(self, lead_id: uuid.UUID, *, for_update: bool = False) -> asyncpg.Record | None:
        scope, args = self._visible(2)
        lock = " FOR UPDATE" if for_update else ""
        row: asyncpg.Record | None = await self.conn.fetchrow(
            f"SELECT {COLUMNS} FROM leads.leads WHERE id = $1 AND {scope}{lock}", lead_id, *args
        )
        return row

    async def many(self, ids: list[uuid.UUID]) -> list[asyncpg.Record]:
        scope, args = self._visible(2)
        rows: list[asyncpg.Record] = await self.conn.fetch(
            f"SELECT {COLUMNS} FROM leads.leads WHERE id = ANY($1::uuid[]) AND {scope} ORDER BY id DESC",
            ids, *args,
        )
        return rows

    async def page(
        self, limit: int, *, sort: str = "-created_at", after: Position | None = None, where: LeadFilter | None = None
    ) -> list[asyncpg.Record]:
        """One page in `sort` order, keyset-paginated on (sort key, id): stable under concurrent inserts."""
        where = where or LeadFilter()
        column, descending = SORTS[sort]
        scope, args = self._visible(1)
        conditions = [scope]

        def param(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if where.status:
            conditions.append(f"status = ANY({param(where.status)}::text[])")
        else:
            conditions.append("status <> 'merged'")
        if where.owner_id is not None:
            conditions.append(f"owner_id = {param(where.owner_id)}")
        if where.unassigned:
            conditions.append("owner_id IS NULL")
        if where.source_id is not None:
            conditions.append(f"source_id = {param(where.source_id)}")
        if where.channel is not None:
            conditions.append(f"channel = {param(where.channel)}")
        if where.tag is not None:
            conditions.append(f"tags @> ARRAY[{param(where.tag)}::text]")
        # Ids are UUIDv7 minted as the lead is created: the time range also bounds the primary key (with a
        # second of slack for the moment between the timestamp and the id), so the scan starts where it should.
        if where.created_after is not None:
            conditions.append(f"created_at >= {param(where.created_after)}")
            conditions.append(f"id >= {param(first_id_at(where.created_after - ID_SLACK))}")
        if where.created_before is not None:
            conditions.append(f"created_at < {param(where.created_before)}")
            conditions.append(f"id < {param(first_id_at(where.created_before + ID_SLACK))}")
        if where.text:
            conditions.append(f"search_text LIKE {param(_like(where.text))}")
        if where.grade or where.temperature:
            # A semi-join probing lead_scores' primary key for each lead the keyset scan yields, so a page still
            # stops after `limit` matches instead of reading every score of the workspace.
            score = ["s.workspace_id = leads.workspace_id", "s.lead_id = leads.id"]
            if where.grade:
                score.append(f"s.grade = ANY({param(where.grade)}::text[])")
            if where.temperature:
                score.append(f"s.temperature = ANY({param(where.temperature)}::text[])")
            conditions.append(f"EXISTS (SELECT FROM leads.lead_scores s WHERE {' AND '.join(score)})")
        op = "<" if descending else ">"
        if after is not None:
            if column == "id":
                conditions.append(f"id {op} {param(after.id)}")
            else:
                conditions.append(f"({column}, id) {op} ({param(after.key)}, {param(after.id)})")
        direction = "DESC" if descending else "ASC"
        order = "id" if column == "id" else f"{column} {direction}, id"
        sql = (
            f"SELECT {COLUMNS} FROM leads.leads WHERE {' AND '.join(conditions)} "
            f"ORDER BY {order} {direction} LIMIT {param(limit)}"
        )
        rows: list[asyncpg.Record] = await self.conn.fetch(sql, *args)
        return rows

    async def touches(self, lead_id: uuid.UUID) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.conn.fetch(
            """
            SELECT id, via, source, source_id, channel, utm, data, origin_id, touched_at FROM leads.lead_touches
            WHERE workspace_id = $1 AND lead_id = $2 ORDER BY id
            """,
            self.principal.workspace_id, lead_id,
        )
        return rows

    async def status_changes(self, lead_id: uuid.UUID) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.conn.fetch(
            """
            SELECT id, from_status, to_status, reason, comment, changed_by, changed_at
            FROM leads.lead_status_changes WHERE workspace_id = $1 AND lead_id = $2 ORDER BY id
            """,
            self.principal.workspace_id, lead_id,
        )
        return rows

    async def merges(self, lead_id: uuid.UUID) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.conn.fetch(
            """
            SELECT id, survivor_id, merged_id, fields, merged_by, merged_at FROM leads.lead_merges
            WHERE workspace_id = $1 AND (survivor_id = $2 OR merged_id = $2) ORDER BY id
            """,
            self.principal.workspace_id, lead_id,
        )
        return rows
