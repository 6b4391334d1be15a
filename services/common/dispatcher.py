"""Delivering a service's outbox to its subscribers: at least once, in order, from any number of replicas.

Two kinds of work run in every replica:
- the *sequencer* gives each committed outbox row the next gap-free `position` (one replica at a time, under
  an advisory lock), so readers can follow the log with a plain cursor and never skip a late commit;
- one *courier* per subscriber leases that subscriber's cursor (claimed with FOR UPDATE SKIP LOCKED, so only
  one replica delivers to a subscriber at a time and the others stand by), POSTs the next batch as signed
  CloudEvents and moves the cursor past what the consumer acknowledged.

A consumer that is down or answers 5xx is retried with capped exponential backoff and jitter, forever: the
events are fine, the consumer is not. An event the consumer rejects is retried `max_attempts` times, then
parked as a dead letter so the rest of the stream can flow; `voronka events redrive` sends it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import orjson

from services.common.db import Connection, Database
from services.common.observability import (
    DEAD_LETTERS,
    DELIVERIES,
    EVENTS_DELIVERED,
    OUTBOX_BACKLOG,
    OUTBOX_LAG,
)
from services.common.outbox import checked_schema, notify_channel
from services.common.settings import Settings
from services.common.signing import DeliverySigner
from services.contracts import PAYLOADS, subscribers_of

log = logging.getLogger("voronka.dispatcher")

BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"


@dataclass(frozen=True)
class Subscriber:
    name: str
    url: str
    types: tuple[str, ...]  # full CloudEvents types, every version of each subscribed event


@dataclass(frozen=True)
class Delivered:
    """The consumer's answer: the first `handled` events are done; `failure` says why the next one is not."""

    handled: int
    failure: str | None


class ConsumerUnavailable(Exception):
    """The consumer could not take the batch at all (down, timeout, 5xx, auth): retry, never dead-letter."""


def subscribers_for(service: str, settings: Settings) -> list[Subscriber]:
    result = []
    for consumer, names in sorted(subscribers_of(service).items()):
        types = tuple(sorted(t for t, model in PAYLOADS.items() if model.event in names))
        result.append(Subscriber(consumer, settings.service_url(consumer).rstrip("/") + "/events", types))
    return result


class Dispatcher:
    def __init__(
        self,
        service: str,
        db: Database,
        settings: Settings,
        subscribers: list[Subscriber] | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.schema = checked_schema(service)
        self.db = db
        self.settings = settings
        self.subscribers = subscribers if subscribers is not None else subscribers_for(service, settings)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(32):08x}"
        self._signer = DeliverySigner(settings.events_secret.get_secret_value())
        self._http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(settings.dispatcher_timeout_seconds, connect=2.0),
            limits=httpx.Limits(max_connections=len(self.subscribers) * 2 + 2),
        )
        self._owns_http = http is None
        self._new_events = asyncio.Event()
        self._wake = {s.name: asyncio.Event() for s in self.subscribers}
        self._unavailable_streak = {s.name: 0 for s in self.subscribers}
        self._tasks: list[asyncio.Task[None]] = []
        self._listener: asyncpg.Connection | None = None

    # ---- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        if not self.subscribers:
            return
        self._tasks.append(asyncio.create_task(self._listen_loop(), name=f"{self.schema}-listen"))
        self._tasks.append(asyncio.create_task(self._sequencer_loop(), name=f"{self.schema}-sequencer"))
        for subscriber in self.subscribers:
            self._tasks.append(
                asyncio.create_task(self._courier_loop(subscriber), name=f"{self.schema}->{subscriber.name}")
            )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
        # Hand the leases back so another replica takes over at once instead of after the lease runs out.
        with contextlib.suppress(Exception):
            async with self.db.pool.acquire() as conn:
                await conn.execute(
                    f"UPDATE {self.schema}.subscriptions SET lease_owner = NULL, lease_until = NULL "
                    "WHERE lease_owner = $1",
                    self.owner,
                )
        if self._owns_http:
            await self._http.aclose()

    def _wake_all(self) -> None:
        self._new_events.set()
        for event in self._wake.values():
            event.set()

    # ---- wake-ups --------------------------------------------------------------------------------------

    async def _listen_loop(self) -> None:
        channel = notify_channel(self.schema)
        while True:
            try:
                lost = asyncio.Event()
                self._listener = await self.db.listen_connection()
                self._listener.add_termination_listener(lambda *_, lost=lost: lost.set())
                await self._listener.add_listener(channel, lambda *_: self._wake_all())
                self._wake_all()  # catch up on anything committed while we were not listening
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("listen connection lost; relying on polling until it is back", exc_info=True)
            await asyncio.sleep(1)

    async def _wait(self, event: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=max(seconds, 0.0))
        event.clear()

    # ---- sequencing ------------------------------------------------------------------------------------

    async def sequence(self) -> int:
        """Positions the committed, not yet positioned rows in `seq` order; returns how many."""
        async with self.db.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"{self.schema}.outbox")
            status: str = await conn.execute(
                f"""
                WITH head AS (
                    SELECT coalesce(max(position), 0) AS last FROM {self.schema}.outbox
                ), todo AS (
                    SELECT workspace_id, id, row_number() OVER (ORDER BY seq) AS n
                    FROM (
                        SELECT workspace_id, id, seq FROM {self.schema}.outbox
                        WHERE position IS NULL ORDER BY seq LIMIT 5000
                    ) unpositioned
                )
                UPDATE {self.schema}.outbox o SET position = head.last + todo.n
                FROM todo, head
                WHERE o.workspace_id = todo.workspace_id AND o.id = todo.id
                """
            )
        return int(status.split()[-1])

    async def _sequencer_loop(self) -> None:
        while True:
            try:
                while (count := await self.sequence()) > 0:
                    for event in self._wake.values():
                        event.set()
                    if count < 5000:
                        break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("sequencing the outbox failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            await self._wait(self._new_events, self.settings.dispatcher_poll_seconds)

    # ---- delivery --------------------------------------------------------------------------------------

    async def _courier_loop(self, subscriber: Subscriber) -> None:
        wake = self._wake[subscriber.name]
        # Not in start(): a process that starts before migrations have run must stay up (alive, not ready).
        while True:
            try:
                async with self.db.pool.acquire() as conn:
                    await conn.execute(
                        f"INSERT INTO {self.schema}.subscriptions (subscriber) VALUES ($1) ON CONFLICT DO NOTHING",
                        subscriber.name,
                    )
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("cannot register the subscriber yet", extra={"subscriber": subscriber.name,
                                                                          "error": str(exc)})
                await self._wait(wake, self.settings.dispatcher_poll_seconds)
        while True:
            try:
                pause = await self.deliver_once(subscriber)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delivery loop failed", extra={"subscriber": subscriber.name})
                pause = self.settings.dispatcher_poll_seconds
            if pause > 0:
                await self._wait(wake, pause)

    async def _claim(self, conn: Connection, subscriber: str) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await conn.fetchrow(
            f"""
            UPDATE {self.schema}.subscriptions s
            SET lease_owner = $2, lease_until = now() + make_interval(secs => $3), updated_at = now()
            WHERE s.subscriber = (
                SELECT subscriber FROM {self.schema}.subscriptions
                WHERE subscriber = $1
                  AND (lease_owner = $2 OR lease_until IS NULL OR lease_until < now())
                FOR UPDATE SKIP LOCKED
            )
            RETURNING s.position, s.attempts, s.retry_at, now() AS now
            """,
            subscriber, self.owner, self.settings.dispatcher_lease_seconds,
        )
        return row

    async def deliver_once(self, subscriber: Subscriber) -> float:
        """One step of delivery to one subscriber; returns how long to pause (0: there is more to do)."""
        settings = self.settings
        async with self.db.pool.acquire() as conn:
            claim = await self._claim(conn, subscriber.name)
            if claim is None:
                # Another replica holds the lease; check back before it could run out.
                return settings.dispatcher_lease_seconds / 2
            now: datetime = claim["now"]
            retry_at: datetime | None = claim["retry_at"]
            if retry_at is not None and retry_at > now:
                return (retry_at - now).total_seconds()

            redrive = await conn.fetchrow(
                f"""
                SELECT d.workspace_id, d.event_id, d.attempts, o.event::text AS event
                FROM {self.schema}.dead_letters d
                JOIN {self.schema}.outbox o ON o.workspace_id = d.workspace_id AND o.id = d.event_id
                WHERE d.subscriber = $1 AND d.status = 'redrive'
                ORDER BY d.position LIMIT 1
                """,
                subscriber.name,
            )
            if redrive is not None:
                return await self._redrive(conn, subscriber, redrive)

            cursor: int = claim["position"]
            head: int = await conn.fetchval(f"SELECT coalesce(max(position), 0) FROM {self.schema}.outbox")
            if head <= cursor:
                return settings.dispatcher_poll_seconds
            rows = await conn.fetch(
                f"""
                SELECT workspace_id, id, position, type, event::text AS event
                FROM {self.schema}.outbox
                WHERE position > $1 AND type = ANY($2::text[])
                ORDER BY position LIMIT $3
                """,
                cursor, list(subscriber.types), settings.dispatcher_batch_size,
            )
            if not rows:
                await self._advance(conn, subscriber, head)
                return 0
            full = len(rows) == settings.dispatcher_batch_size
            # Past the last matching row there may be rows of types this subscriber does not want.
            end = rows[-1]["position"] if full else max(head, rows[-1]["position"])

            try:
                delivered = await self._post(subscriber, [r["event"] for r in rows])
            except ConsumerUnavailable as exc:
                return await self._unavailable(conn, subscriber, str(exc))

            self._unavailable_streak[subscriber.name] = 0
            if delivered.failure is None:
                DELIVERIES.labels(self.schema, subscriber.name, "ok").inc()
                EVENTS_DELIVERED.labels(self.schema, subscriber.name).inc(len(rows))
                await self._advance(conn, subscriber, end)
                return 0

            DELIVERIES.labels(self.schema, subscriber.name, "rejected").inc()
            EVENTS_DELIVERED.labels(self.schema, subscriber.name).inc(delivered.handled)
            handled = delivered.handled
            # Attempts count the failures of the event now at the head of the stream.
            attempts = 1 if handled > 0 else claim["attempts"] + 1
            failed = rows[handled]
            if handled > 0:
                await self._advance(conn, subscriber, rows[handled - 1]["position"], attempts=attempts,
                                    error=delivered.failure)
            if attempts >= settings.dispatcher_max_attempts:
                await self._dead_letter(conn, subscriber, failed, attempts, delivered.failure)
                return 0
            log.warning(
                "consumer rejected an event",
                extra={"subscriber": subscriber.name, "event_id": str(failed["id"]), "attempts": attempts,
                       "error": delivered.failure},
            )
            return await self._retry_later(conn, subscriber, attempts, str(delivered.failure))

    def _backoff(self, attempts: int) -> float:
        base: float = self.settings.dispatcher_backoff_base_seconds * (2.0 ** min(attempts - 1, 20))
        return min(self.settings.dispatcher_backoff_max_seconds, base) * random.uniform(0.5, 1.0)

    async def _advance(
        self, conn: Connection, subscriber: Subscriber, position: int,
        *, attempts: int = 0, error: str | None = None,
    ) -> None:
        # The lease owner check fences off a replica whose lease ran out while it was delivering.
        await conn.execute(
            f"""
            UPDATE {self.schema}.subscriptions
            SET position = greatest(position, $3), attempts = $4, last_error = $5, retry_at = NULL,
                updated_at = now()
            WHERE subscriber = $1 AND lease_owner = $2
            """,
            subscriber.name, self.owner, position, attempts, error,
        )

    async def _unavailable(self, conn: Connection, subscriber: Subscriber, error: str) -> float:
        """The consumer is down: back off, but leave the event's attempt count alone."""
        streak = self._unavailable_streak[subscriber.name] = self._unavailable_streak[subscriber.name] + 1
        delay = self._backoff(streak)
        DELIVERIES.labels(self.schema, subscriber.name, "unavailable").inc()
        log.warning("consumer unavailable", extra={"subscriber": subscriber.name, "error": error,
                                                   "retry_in_s": round(delay, 3)})
        await conn.execute(
            f"""
            UPDATE {self.schema}.subscriptions
            SET last_error = $3, retry_at = now() + make_interval(secs => $4), updated_at = now()
            WHERE subscriber = $1 AND lease_owner = $2
            """,
            subscriber.name, self.owner, error[:2000], delay,
        )
        return delay

    async def _retry_later(
        self, conn: Connection, subscriber: Subscriber, attempts: int, error: str
    ) -> float:
        delay = self._backoff(attempts)
        await conn.execute(
            f"""
            UPDATE {self.schema}.subscriptions
            SET attempts = $3, last_error = $4, retry_at = now() + make_interval(secs => $5), updated_at = now()
            WHERE subscriber = $1 AND lease_owner = $2
            """,
            subscriber.name, self.owner, attempts, error[:2000], delay,
        )
        return delay

    async def _dead_letter(
        self, conn: Connection, subscriber: Subscriber, row: asyncpg.Record, attempts: int, error: str
    ) -> None:
        async with conn.transaction():
            await conn.execute(
                f"""
                INSERT INTO {self.schema}.dead_letters
                    (workspace_id, event_id, subscriber, position, type, error, attempts)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
                ON CONFLICT (workspace_id, event_id, subscriber)
                DO UPDATE SET status = 'dead', error = excluded.error, attempts = excluded.attempts,
                              dead_at = now()
                """,
                row["workspace_id"], row["id"], subscriber.name, row["position"], row["type"], error[:2000],
                attempts,
            )
            await self._advance(conn, subscriber, row["position"])
        DEAD_LETTERS.labels(self.schema, subscriber.name).inc()
        log.error(
            "event parked as a dead letter",
            extra={"subscriber": subscriber.name, "event_id": str(row["id"]), "attempts": attempts,
                   "error": error},
        )

    async def _redrive(self, conn: Connection, subscriber: Subscriber, row: asyncpg.Record) -> float:
        try:
            delivered = await self._post(subscriber, [row["event"]])
        except ConsumerUnavailable as exc:
            return await self._unavailable(conn, subscriber, str(exc))
        ok = delivered.failure is None
        await conn.execute(
            f"""
            UPDATE {self.schema}.dead_letters
            SET status = $4, redriven_at = CASE WHEN $4 = 'redriven' THEN now() END,
                attempts = attempts + 1, error = coalesce($5, error)
            WHERE workspace_id = $1 AND event_id = $2 AND subscriber = $3
            """,
            row["workspace_id"], row["event_id"], subscriber.name, "redriven" if ok else "dead",
            delivered.failure,
        )
        if ok:
            DEAD_LETTERS.labels(self.schema, subscriber.name).dec()
        return 0

    async def _post(self, subscriber: Subscriber, events: list[str]) -> Delivered:
        body = ("[" + ",".join(events) + "]").encode()
        headers = {"content-type": BATCH_CONTENT_TYPE, **self._signer.headers(body)}
        try:
            response = await self._http.post(subscriber.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise ConsumerUnavailable(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500 or response.status_code in (401, 403, 404, 408, 429):
            raise ConsumerUnavailable(f"HTTP {response.status_code}: {response.text[:500]}")
        if response.status_code >= 400:
            # The batch as a whole was refused; blame its first event so retries and dead-lettering apply.
            return Delivered(0, f"HTTP {response.status_code}: {response.text[:500]}")
        try:
            answer: dict[str, Any] = orjson.loads(response.content)
            handled = int(answer["handled"])
            failure = answer.get("failure")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ConsumerUnavailable(f"unreadable answer: {response.text[:200]}") from exc
        if failure is None and handled < len(events):
            raise ConsumerUnavailable(f"consumer acknowledged {handled} of {len(events)} events")
        return Delivered(handled, None if failure is None else str(failure.get("error", failure)))

    # ---- metrics ---------------------------------------------------------------------------------------

    async def observe(self, conn: Connection) -> None:
        """Refreshes the backlog, lag and dead-letter gauges (called when /metrics is scraped)."""
        rows = await conn.fetch(
            f"""
            SELECT s.subscriber,
                   (SELECT coalesce(max(position), 0) FROM {self.schema}.outbox) - s.position AS backlog,
                   extract(epoch FROM now() - (
                       SELECT occurred_at FROM {self.schema}.outbox o
                       WHERE o.position > s.position ORDER BY o.position LIMIT 1)) AS lag,
                   (SELECT count(*) FROM {self.schema}.dead_letters d
                    WHERE d.subscriber = s.subscriber AND d.status <> 'redriven') AS dead
            FROM {self.schema}.subscriptions s
            """
        )
        for row in rows:
            OUTBOX_BACKLOG.labels(self.schema, row["subscriber"]).set(row["backlog"])
            OUTBOX_LAG.labels(self.schema, row["subscriber"]).set(float(row["lag"] or 0))
            DEAD_LETTERS.labels(self.schema, row["subscriber"]).set(row["dead"])
