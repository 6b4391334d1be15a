"""Queries on the reporting read model, each scoped to the caller by `visible_to`."""

from __future__ import annotations

import asyncpg

from services.common.auth import Principal
from services.common.db import Connection
from services.common.scoping import visible_to


class FactsRepository:
    def __init__(self, conn: Connection, principal: Principal) -> None:
        self.conn = conn
        self.principal = principal

    async def leads_by_source(self) -> list[asyncpg.Record]:
        scope, args = visible_to(self.principal, 1)
        rows: list[asyncpg.Record] = await self.conn.fetch(
            f"""
            SELECT source, count(*) AS count FROM reporting.lead_facts
            WHERE {scope}
            GROUP BY source ORDER BY count(*) DESC, source
            """,
            *args,
        )
        return rows
