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


async def test_a_transaction_wakes_the_listeners_it_asked_for_only_once_it_has_committed(database_url):
    db = Database(database_url, schema="leads", min_size=1, max_size=2)
    await db.connect()
    woken: list[str] = []
    db.wakers["here"] = lambda: woken.append("here")
    listener = await db.listen_connection()
    heard: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("elsewhere", lambda *args: heard.put_nowait(args[2]))
    try:
        assert not db_module.wake_after_commit("here")  # outside a transaction: the caller must NOTIFY itself

        async with db.transaction() as conn:
            assert db_module.wake_after_commit("here")
            assert db_module.wake_after_commit("elsewhere")
            await conn.execute("SELECT 1")
            # Not before the commit: a listener woken now would look and find nothing.
            assert woken == []
            assert heard.empty()
        # This process's listener is called directly; a channel no one here listens on gets a NOTIFY.
        assert woken == ["here"]
        assert await asyncio.wait_for(heard.get(), timeout=5) == "elsewhere"

        try:
            async with db.transaction():
                db_module.wake_after_commit("here")
                raise RuntimeError("the request failed")
        except RuntimeError:
            pass
        assert woken == ["here"]  # a rolled-back transaction wakes no one
    finally:
        await listener.close()
        await db.close()
