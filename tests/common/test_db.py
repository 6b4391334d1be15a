"""The connection pool as requests see it under overload."""

from __future__ import annotations

import asyncio

from services.common import db as db_module
from services.common.db import Connection, Database


async def test_a_released_connection_goes_to_the_request_that_waited_longest(database_url, monkeypatch):
    back = asyncio.Event()

    async def reset(conn: Connection) -> None:
        back.set()  # runs as the connection is being handed back, just before the pool hands it on

    monkeypatch.setattr(db_module, "_keep_session", reset)
    db = Database(database_url, schema="leads", min_size=1, max_size=1)
    await db.connect()
    served: list[str] = []

    async def ask(name: str, after: asyncio.Event | None = None) -> None:
        if after is not None:
            await after.wait()
        async with db.connection() as conn:
            served.append(name)
            await conn.fetchval("SELECT 1")

    try:
        async with db.connection():
            waiter = asyncio.create_task(ask("waiter"))
            await asyncio.sleep(0.05)
            # Wakes as the connection comes back, ahead of the waiter: asyncpg's pool alone lets it take the
            # connection, and under load a request could lose its turn again and again.
            newcomer = asyncio.create_task(ask("newcomer", after=back))
            await asyncio.sleep(0.01)
        await asyncio.wait_for(asyncio.gather(waiter, newcomer), timeout=10)
    finally:
        await db.close()
    assert served == ["waiter", "newcomer"]
