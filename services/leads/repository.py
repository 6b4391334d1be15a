"""Queries on leads. Every read goes through `_visible`, which scopes rows to the caller (`visible_to`)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from services.common.auth import Principal
from services.common.db import Connection
from services.common.scoping import visible_to

COLUMNS = (
    "id, workspace_id, name, email, phone, company, source, owner_id, status, created_by, created_at, "
    "updated_at, version"
)


class LeadRepository:
    def __init__(self, conn: Connection, principal: Principal) -> None:
        self.conn = conn
        self.principal = principal

    def _visible(self, first_param: int) -> tuple[str, list[Any]]:
        """The caller's workspace; for a rep, only the leads they own."""
        return visible_to(self.principal, first_param)

    async def add(self, lead_id: uuid.UUID, values: dict[str, Any]) -> asyncpg.Record:
        row: asyncpg.Record | None = await self.conn.fetchrow(
            f"""
            INSERT INTO leads.leads (workspace_id, id, name, email, phone, company, source, owner_id, created_by)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            RETURNING {COLUMNS}
            """,
            self.principal.workspace_id, lead_id, values["name"], values["email"], values["phone"],
            values["company"], values["source"], values["owner_id"], self.principal.user_id,
        )
        assert row is not None  # INSERT ... RETURNING always returns the row
        return row

    async def get(self, lead_id: uuid.UUID) -> asyncpg.Record | None:
        scope, args = self._visible(2)
        row: asyncpg.Record | None = await self.conn.fetchrow(
            f"SELECT {COLUMNS} FROM leads.leads WHERE id = $1 AND {scope}", lead_id, *args
        )
        return row

    async def many(self, ids: list[uuid.UUID]) -> list[asyncpg.Record]:
        scope, args = self._visible(2)
        rows: list[asyncpg.Record] = await self.conn.fetch(
            f"SELECT {COLUMNS} FROM leads.leads WHERE id = ANY($1::uuid[]) AND {scope} ORDER BY id DESC",
            ids, *args,
        )
        return rows

    async def page(self, limit: int, before: uuid.UUID | None) -> list[asyncpg.Record]:
        """Newest first (ids are UUIDv7), keyset-paginated on the primary key."""
        scope, args = self._visible(3)
        rows: list[asyncpg.Record] = await self.conn.fetch(
            f"""
            SELECT {COLUMNS} FROM leads.leads
            WHERE ($1::uuid IS NULL OR id < $1) AND {scope}
            ORDER BY id DESC LIMIT $2
            """,
            before, limit, *args,
        )
        return rows
