"""Queries on deals. Every read goes through `_visible`, which scopes rows to the caller (`visible_to`): their
workspace and, for a rep, the deals they own."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from services.common.auth import Principal
from services.common.db import Connection
from services.common.scoping import visible_to

COLUMNS = (
    "workspace_id, id, pipeline_id, stage_id, title, amount, currency, line_items, expected_close_date, company, "
    "contact, owner_id, lead_id, source, channel, region, products, custom, tags, status, stage_entered_at, "
    "created_by, created_at, updated_at, version"
)


@dataclass(frozen=True)
class DealFilter:
    pipeline_id: uuid.UUID | None = None
    stage_id: uuid.UUID | None = None
    owner_id: uuid.UUID | None = None
    status: str | None = None


def money(row: asyncpg.Record) -> dict[str, Any] | None:
    """The row's amount as Money's fields, or None."""
    if row["amount"] is None:
        return None
    return {"amount": row["amount"], "currency": row["currency"]}


def as_fields(row: asyncpg.Record) -> dict[str, Any]:
    """A deal row in the API's and the events' shape (the amount as Money)."""
    values = {k: v for k, v in dict(row).items() if k not in ("amount", "currency")}
    return {**values, "amount": money(row)}


class DealRepository:
    def __init__(self, conn: Connection, principal: Principal) -> None:
        self.conn = conn
        self.principal = principal

    def _visible(self, first_param: int) -> tuple[str, list[Any]]:
        return visible_to(self.principal, first_param)

    async def get(self, deal_id: uuid.UUID, *, for_update: bool = False) -> asyncpg.Record | None:
        scope, args = self._visible(2)
        lock = " FOR NO KEY UPDATE" if for_update else ""
        row: asyncpg.Record | None = await self.conn.fetchrow(
            f"SELECT {COLUMNS} FROM deals.deals WHERE id = $1 AND {scope}{lock}", deal_id, *args
        )
        return row

    async def page(self, limit: int, after: uuid.UUID | None, where: DealFilter) -> list[asyncpg.Record]:
        """Newest first (ids are UUIDv7), keyset-paginated on the id."""
        scope, args = self._visible(1)
        conditions = [scope]

        def param(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        for column in ("pipeline_id", "stage_id", "owner_id", "status"):
            value = getattr(where, column)
            if value is not None:
                conditions.append(f"{column} = {param(value)}")
        if after is not None:
            conditions.append(f"id < {param(after)}")
        rows: list[asyncpg.Record] = await self.conn.fetch(
            f"SELECT {COLUMNS} FROM deals.deals WHERE {' AND '.join(conditions)} ORDER BY id DESC "
            f"LIMIT {param(limit)}",
            *args,
        )
        return rows
