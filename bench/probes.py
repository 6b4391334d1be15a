"""SQL the bench reads the stack's state with, as the superuser: the outbox backlog and what reporting applied."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from services.contracts import event_type, subscribers_of


async def undelivered(conn: asyncpg.Connection) -> int:
    """Events in leads' outbox for reporting (the types it subscribes to) that it has not recorded yet."""
    types = [event_type(name, 1) for name in subscribers_of("leads").get("reporting", ())]
    count: int = await conn.fetchval(
        """
        SELECT count(*) FROM leads.outbox o
        WHERE o.type = ANY($1::text[])
          AND NOT EXISTS (SELECT 1 FROM reporting.inbox i WHERE i.workspace_id = o.workspace_id AND i.event_id = o.id)
        """,
        types,
    )
    return count


async def wait_drained(conn: asyncpg.Connection, *, timeout: float = 60.0) -> float:
    """Waits until reporting has applied every event leads published; the seconds it took.

    Between runs, so that one run's delivery does not take CPU from the next one's requests.
    """
    started = time.monotonic()
    while (left := await undelivered(conn)) > 0:
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{left} events still undelivered after {timeout:.0f}s")
        await asyncio.sleep(0.1)
    return time.monotonic() - started
