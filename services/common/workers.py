"""Background work queued in a service's own tables: a loop woken by NOTIFY, with polling as the safety net.

A `QueueWorker` subclass implements `step()`, which claims a batch of due rows (FOR UPDATE SKIP LOCKED, so any
number of replicas share the queue without doing anything twice), works it, commits and returns how many rows
it took. The loop calls `step()` until it returns 0, then sleeps until a notification on `channel` or the poll
interval. A row committed by the API wakes the worker at once with `notify(conn, channel)`: after the commit,
in-process when this replica runs the worker, else by NOTIFY; the poll only matters when a wake-up is lost
(connection drop) or went to another replica's worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg

from services.common.db import Connection, Database, wake_after_commit

log = logging.getLogger("voronka.workers")


async def notify(conn: Connection, channel: str) -> None:
    """Wakes the workers listening on `channel` when the caller's transaction commits."""
    if not wake_after_commit(channel):
        await conn.execute("SELECT pg_notify($1, '')", channel)


class QueueWorker:
    channel: str
    poll_seconds: float = 2.0
    # After an unexpected error, wait this long before the next step, so a poisoned row cannot spin a core.
    error_pause_seconds: float = 1.0
    # After a wake-up, wait this long before working, so that work arriving one item at a time is taken in batches
    # (a step's fixed cost, a transaction and its queries, is paid once per batch rather than per item).
    linger_seconds: float = 0.0

    def __init__(self, db: Database) -> None:
        self.db = db
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._listener: asyncpg.Connection | None = None

    async def step(self) -> int:
        raise NotImplementedError

    async def start(self) -> None:
        name = type(self).__name__
        self.db.wakers[self.channel] = self._wake.set
        self._tasks = [
            asyncio.create_task(self._listen_loop(), name=f"{name}-listen"),
            asyncio.create_task(self._work_loop(), name=f"{name}-work"),
        ]

    async def stop(self) -> None:
        self.db.wakers.pop(self.channel, None)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()

    async def drain(self) -> int:
        """Runs steps until the queue is empty; returns the rows worked. For tests and the CLI."""
        total = 0
        while n := await self.step():
            total += n
        return total

    async def _work_loop(self) -> None:
        while True:
            try:
                while await self.step():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background step failed", extra={"worker": type(self).__name__})
                await asyncio.sleep(self.error_pause_seconds)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
            if self.linger_seconds:
                await asyncio.sleep(self.linger_seconds)
            self._wake.clear()

    async def _listen_loop(self) -> None:
        while True:
            try:
                lost = asyncio.Event()
                self._listener = await self.db.listen_connection()
                self._listener.add_termination_listener(lambda *_, lost=lost: lost.set())
                await self._listener.add_listener(self.channel, self._on_notification)
                self._wake.set()  # catch up on anything committed while we were not listening
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("listen connection lost; polling until it is back", exc_info=True)
            await asyncio.sleep(1)

    def _on_notification(self, *_: object) -> None:
        self._wake.set()


WorkerFactory = Callable[[Database], QueueWorker]
