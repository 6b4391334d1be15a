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

# CloudEvents' HTTP binding: one event in structured mode, several in batched mode (one POST under load).
EVENT_CONTENT_TYPE = "application/cloudevents+json"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
SEQUENCE_BATCH = 5000  # rows positioned per round of the sequencer
SEQUENCED = "sequenced"  # notification payload: rows got positions (a commit's own notification is empty)


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
        # Subscribers whose last step ended in a back-off: their courier sleeps it out, deaf to wake-ups.
        self._backing_off: set[str] = set()
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
            async with self.db.connection() as conn:
                await conn.execute(
                    f"UPDATE {self.schema}.subscriptions SET lease_owner = NULL, lease_until = NULL "
                    "WHERE lease_owner = $1",
                    self.owner,
                )
        if self._owns_http:
            await self._http.aclose()

    def poke(self) -> None:
        """Events were committed in this process: sequence them (the sequencer then wakes the couriers of
        every replica)."""
        self._new_events.set()

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
                await self._listener.add_listener(channel, self._on_notification)
                self._wake_all()  # catch up on anything committed while we were not listening
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("listen connection lost; relying on polling until it is back", exc_info=True)
            await asyncio.sleep(1)

    def _on_notification(self, _conn: Connection, _pid: int, _channel: str, payload: object) -> None:
        if payload == SEQUENCED:
            # Another replica's sequencer (or ours) positioned rows: only the couriers have work.
            for event in self._wake.values():
                event.set()
        else:
            self._wake_all()  # a commit with new events, or an operator's redrive

    async def _wait(self, event: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=max(seconds, 0.0))
        event.clear()

    # ---- sequencing ------------------------------------------------------------------------------------

    async def sequence(self) -> int:
        """Positions the committed, not yet positioned rows in `seq` order; returns how many."""
        async with self.db.connection() as conn:
            # Two statements in one simple query run as one implicit transaction: the advisory lock is held
            # until the UPDATE commits, in one round trip instead of four (BEGIN, lock, UPDATE, COMMIT).
            # PostgreSQL folds identical notifications of a transaction into one, so the couriers of every
            # replica hear once per round that there is something to deliver, and not at all when there is not.
            status: str = await conn.execute(
                f"""
                SELECT pg_advisory_xact_lock(hashtext('{self.schema}.outbox'));
                WITH head AS (
                    SELECT coalesce(max(position), 0) AS last FROM {self.schema}.outbox
                ), todo AS (
                    SELECT workspace_id, id, row_number() OVER (ORDER BY seq) AS n
                    FROM (
                        SELECT workspace_id, id, seq FROM {self.schema}.outbox
                        WHERE position IS NULL ORDER BY seq LIMIT {SEQUENCE_BATCH}
                    ) unpositioned
                )
                UPDATE {self.schema}.outbox o SET position = head.last + todo.n
                FROM todo, head
                WHERE o.workspace_id = todo.workspace_id AND o.id = todo.id
                RETURNING pg_notify('{notify_channel(self.schema)}', '{SEQUENCED}')
                """
            )
        return int(status.split()[-1])

    async def _sequencer_loop(self) -> None:
        busy = False
        while True:
            if busy:
                # Events are flowing: let the commits of the next few milliseconds join this round, so that
                # under load there is one round of sequencing and one POST per linger instead of per event.
                # After a quiet spell the first event goes out at once.
                await asyncio.sleep(self.settings.dispatcher_linger_seconds)
            try:
                busy = False
                while (count := await self.sequence()) > 0:
                    busy = True
                    for event in self._wake.values():
                        event.set()
                    if count < SEQUENCE_BATCH:
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
                async with self.db.connection() as conn:
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
            if pause > 0 and subscriber.name in self._backing_off:
                # The consumer is failing: new events must not cut its back-off short (during an outage each
                # commit would otherwise cost a lease round trip, for nothing).
                self._backing_off.discard(subscriber.name)
                await asyncio.sleep(pause)
            elif pause > 0:
                await self._wait(wake, pause)

    async def _claim(self, conn: Connection, subscriber: str) -> asyncpg.Record | None:
        """Takes or renews the subscriber's lease; with it, what the courier needs to decide its next step."""
        row: asyncpg.Record | None = await conn.fetchrow(
            f"""
            WITH claimed AS (
                UPDATE {self.schema}.subscriptions s
                SET lease_owner = $2, lease_until = now() + make_interval(secs => $3), updated_at = now()
                WHERE s.subscriber = (
                    SELECT subscriber FROM {self.schema}.subscriptions
                    WHERE subscriber = $1
                      AND (lease_owner = $2 OR lease_until IS NULL OR lease_until < now())
                    FOR UPDATE SKIP LOCKED
                )
                RETURNING s.position, s.attempts, s.retry_at
            )
            SELECT c.position, c.attempts, c.retry_at, now() AS now,
                   (SELECT coalesce(max(position), 0) FROM {self.schema}.outbox) AS head,
                   EXISTS (SELECT FROM {self.schema}.dead_letters
                           WHERE subscriber = $1 AND status = 'redrive') AS redrive
            FROM claimed c
            """,
            subscriber, self.owner, self.settings.dispatcher_lease_seconds,
        )
        return row

    async def deliver_once(self, subscriber: Subscriber) -> float:
        """One step of delivery to one subscriber; returns how long to pause (0: there is more to do)."""
        settings = self.settings
        async with self.db.connection() as conn:
            claim = await self._claim(conn, subscriber.name)
            if claim is None:
                # Another replica holds the lease; check back before it could run out.
                return settings.dispatcher_lease_seconds / 2
            now: datetime = claim["now"]
            retry_at: datetime | None = claim["retry_at"]
            if retry_at is not None and retry_at > now:
                self._backing_off.add(subscriber.name)
                return (retry_at - now).total_seconds()

            redrive = claim["redrive"] and await conn.fetchrow(
                f"""
                SELECT d.workspace_id, d.event_id, d.attempts, o.event::text AS event
                FROM {self.schema}.dead_letters d
                JOIN {self.schema}.outbox o ON o.workspace_id = d.workspace_id AND o.id = d.event_id
                WHERE d.subscriber = $1 AND d.status = 'redrive'
                ORDER BY d.position LIMIT 1
                """,
                subscriber.name,
            )
            if redrive:
                return await self._redrive(conn, subscriber, redrive)

            cursor: int = claim["position"]
            head: int = claim["head"]
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
            fitting = self._fitting(rows)
            if fitting < len(rows):
                # The consumer refuses bodies over VORONKA_EVENTS_MAX_BODY_BYTES: send what fits, the rest next.
                rows, full = rows[:fitting], True
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
                # Caught up with what was sequenced: the sequencer wakes us when there is more (it may have
                # already), which saves a claim round trip per batch under load.
                return 0 if full else settings.dispatcher_poll_seconds

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

    def _fitting(self, rows: list[asyncpg.Record]) -> int:
        """How many of `rows`, from the first, fit in one delivery body (at least one: a single event too
        large for the consumer is refused, retried and parked like any other rejected event)."""
        room = self.settings.events_max_body_bytes - 2  # the batch's brackets
        for index, row in enumerate(rows):
            event: str = row["event"]
            # isascii() is a flag check in CPython: only events with non-ASCII text pay for an encode.
            room -= (len(event) if event.isascii() else len(event.encode())) + 1
            if room < 0:
                return max(index, 1)
        return len(rows)

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
        self._backing_off.add(subscriber.name)
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
        self._backing_off.add(subscriber.name)
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
        if len(events) == 1:
            body, content_type = events[0].encode(), EVENT_CONTENT_TYPE
        else:
            body, content_type = ("[" + ",".join(events) + "]").encode(), BATCH_CONTENT_TYPE
        headers = {"content-type": content_type, **self._signer.headers(body)}
        try:
            # httpx's timeout bounds each read and write, not the whole exchange; the lease needs a bound on
            # the whole of it (Settings keeps it under half the lease).
            async with asyncio.timeout(self.settings.dispatcher_timeout_seconds):
                response = await self._http.post(subscriber.url, content=body, headers=headers)
        except TimeoutError as exc:
            raise ConsumerUnavailable(
                f"no answer within {self.settings.dispatcher_timeout_seconds:g} s"
            ) from exc
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
