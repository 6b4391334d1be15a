"""The database a service owns: an asyncpg pool on its own role, and one transaction per request.

Tables are declared with SQLModel (the source of truth Alembic migrates from); queries run on asyncpg with
SQL in each service's repository, which keeps the write path at a few hundred microseconds of CPU.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Annotated, Any, TypeAlias

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy
from fastapi import Depends, Request

from services.common.settings import Settings

# A connection of our own, or one lent by the pool: the code that uses it cannot tell the difference.
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

log = logging.getLogger("voronka.db")

# The channels whose listeners the current Database.transaction() wakes once it has committed.
_wake_after_commit: ContextVar[set[str] | None] = ContextVar("wake_after_commit", default=None)


def wake_after_commit(channel: str) -> bool:
    """Asks for `channel`'s listeners (a dispatcher, a queue worker) to be woken when the current
    `Database.transaction()` commits. False outside one: the caller then NOTIFYs inside its own transaction.

    Why not NOTIFY in the transaction: PostgreSQL serializes notifying commits on one database-wide lock held
    until the commit is flushed, so every event-writing request queued behind one WAL flush at a time (at
    1,000 leads/s a third of the active backends were waiting on that lock, `Lock:object`). Woken after the
    commit, the writes share flushes again.
    """
    pending = _wake_after_commit.get()
    if pending is None:
        return False
    pending.add(channel)
    return True


def asyncpg_dsn(url: str) -> str:
    """SQLAlchemy-style URLs (postgresql+asyncpg://) to the plain form asyncpg takes."""
    scheme, sep, rest = url.partition("://")
    return f"postgresql{sep}{rest}" if sep and scheme.startswith("postgres") else url


def service_dsn(settings: Settings, service: str) -> str:
    explicit = os.environ.get(f"VORONKA_{service.upper()}_DATABASE_URL")
    return asyncpg_dsn(explicit or settings.service_database_url(service))


async def _init_connection(conn: Connection) -> None:
    await conn.set_type_codec(
        "jsonb", encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads, schema="pg_catalog"
    )


async def _keep_session(conn: Connection) -> None:
    """Replaces asyncpg's reset query (a round trip and ~30% of PostgreSQL's CPU per lead written): pooled
    sessions never SET, LISTEN or take session-level advisory locks (LISTEN has its own connection, advisory
    locks are transaction-level), and asyncpg still rolls back an open transaction before this runs."""


class Database:
    def __init__(self, dsn: str, *, schema: str, min_size: int = 2, max_size: int = 20) -> None:
        self.dsn = asyncpg_dsn(dsn)
        self.schema = schema
        self._min = min_size
        self._max = max_size
        self._pool: asyncpg.Pool | None = None
        self._gate = asyncio.Semaphore(max_size)
        # channel -> wakes the listener running in this process (the dispatcher, a worker) without a NOTIFY.
        self.wakers: dict[str, Callable[[], None]] = {}

    async def connect(self) -> None:
        self._pool = await asyncpg.create_pool(
            self.dsn,
            min_size=self._min,
            max_size=self._max,
            init=_init_connection,
            reset=_keep_session,
            server_settings={
                "search_path": self.schema,
                "application_name": f"voronka-{self.schema}",
                # A forgotten transaction must not hold back the outbox's visibility horizon.
                "idle_in_transaction_session_timeout": "60000",
            },
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the database is not connected")
        return self._pool

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """A pooled connection, handed out first come, first served.

        asyncpg's pool lets a newcomer take a connection released to a waiter, so under overload (more
        requests in flight than connections) some requests waited half a second while others never waited:
        p99 was 6x the baseline's at 64 clients. asyncio.Semaphore hands each release to the oldest waiter.
        """
        async with self._gate, self.pool.acquire() as conn:
            yield conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        """A pooled connection in a transaction that commits when the block ends: a handler builds its
        response after the block, so an acknowledged write is durable and a failed commit is an error.

        After the commit it wakes the listeners the block asked for (`wake_after_commit`)."""
        channels: set[str] = set()
        token = _wake_after_commit.set(channels)
        try:
            async with self.connection() as conn:
                async with conn.transaction():
                    yield conn
                await self._wake(conn, channels)
        finally:
            _wake_after_commit.reset(token)

    async def _wake(self, conn: Connection, channels: set[str]) -> None:
        for channel in sorted(channels):
            local = self.wakers.get(channel)
            if local is not None:
                # This process runs the listener; the others find the work when they poll (and a dispatcher's
                # sequencer tells every replica's couriers when it has positioned new events).
                local()
                continue
            try:
                # Its own tiny transaction: no WAL to flush, so the notify lock is held for microseconds.
                await conn.execute("SELECT pg_notify($1, '')", channel)
            except (asyncpg.PostgresError, OSError) as exc:
                # The write is committed; a lost wake-up only delays the work until the listeners' next poll.
                log.warning("could not wake listeners after commit", extra={"channel": channel, "error": str(exc)})

    async def listen_connection(self) -> asyncpg.Connection:
        """A dedicated connection (outside the pool) for LISTEN."""
        conn: asyncpg.Connection = await asyncpg.connect(self.dsn, server_settings={"search_path": self.schema})
        return conn


async def get_database(request: Request) -> Database:
    # async: FastAPI runs a plain `def` dependency in a worker thread, which costs more than the lookup.
    db: Database = request.app.state.db
    return db


DB = Annotated[Database, Depends(get_database)]


async def read_connection(request: Request) -> AsyncIterator[Any]:
    db: Database = request.app.state.db
    async with db.connection() as conn:
        yield conn


ReadConn = Annotated[Connection, Depends(read_connection, scope="function")]
