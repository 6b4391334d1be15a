"""Receiving events: each batch is applied in one transaction together with its inbox rows.

The inbox row and the handler's effects commit together, so a redelivered event finds its id already there
and changes nothing. A handler that fails stops the batch: what came before it commits, and the producer is
told which event failed so it can retry or park just that one.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from services.common.db import Connection, Database
from services.common.observability import EVENTS_APPLIED, child_traceparent, traceparent_var
from services.common.outbox import checked_schema
from services.contracts import CloudEvent

log = logging.getLogger("voronka.inbox")

Handler = Callable[[Connection, CloudEvent], Awaitable[None]]


@dataclass(frozen=True)
class BatchResult:
    handled: int
    failure: dict[str, Any] | None

    def as_json(self) -> dict[str, Any]:
        return {"handled": self.handled, "failure": self.failure}


class HandlerFailed(Exception):
    def __init__(self, index: int, event_id: str, error: str) -> None:
        super().__init__(error)
        self.index = index
        self.event_id = event_id
        self.error = error


class Inbox:
    def __init__(self, db: Database, service: str, handlers: Mapping[str, Handler]) -> None:
        self.db = db
        self.schema = checked_schema(service)
        self.service = service
        self.handlers = dict(handlers)  # keyed by event name, e.g. "lead.created"

    async def receive(self, raw_events: list[Any]) -> BatchResult:
        """Validates each event, then applies the valid prefix; an invalid event fails at its index."""
        events: list[CloudEvent] = []
        invalid: dict[str, Any] | None = None
        for index, raw in enumerate(raw_events):
            try:
                events.append(CloudEvent.model_validate(raw))
            except ValidationError as exc:
                event_id = str(raw.get("id")) if isinstance(raw, dict) else "?"
                invalid = {"index": index, "id": event_id, "error": f"not a valid CloudEvent: {exc}"}
                break
        result = await self.apply(events)
        if result.failure is None and invalid is not None:
            EVENTS_APPLIED.labels(self.service, "invalid").inc()
            return BatchResult(result.handled, invalid)
        return result

    async def apply(self, events: list[CloudEvent]) -> BatchResult:
        if not events:
            return BatchResult(0, None)
        try:
            await self._apply_all(events)
            return BatchResult(len(events), None)
        except HandlerFailed as failed:
            EVENTS_APPLIED.labels(self.service, "failed").inc()
            log.warning("event handler failed", extra={"event_id": failed.event_id, "error": failed.error})
            if failed.index > 0:
                # The events before the failing one were fine: commit them on their own.
                await self._apply_all(events[: failed.index])
            return BatchResult(
                failed.index, {"index": failed.index, "id": failed.event_id, "error": failed.error}
            )

    async def _apply_all(self, events: list[CloudEvent]) -> None:
        async with self.db.connection() as conn, conn.transaction():
            fresh: set[uuid.UUID] = {
                row["event_id"]
                for row in await conn.fetch(
                    f"""
                    INSERT INTO {self.schema}.inbox (workspace_id, event_id, type, source)
                    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[])
                    ON CONFLICT DO NOTHING
                    RETURNING event_id
                    """,
                    [e.workspaceid for e in events], [e.id for e in events],
                    [e.type for e in events], [e.source for e in events],
                )
            }
            duplicates = 0
            for index, event in enumerate(events):
                if event.id not in fresh:
                    duplicates += 1
                    continue
                fresh.discard(event.id)  # the same event twice in one batch is applied once
                handler = self.handlers.get(event.name)
                if handler is None:
                    continue
                token = traceparent_var.set(child_traceparent(event.traceparent))
                try:
                    # No savepoint: a failure rolls the whole batch back and the good prefix is re-applied.
                    await handler(conn, event)
                except Exception as exc:
                    raise HandlerFailed(index, str(event.id), f"{type(exc).__name__}: {exc}") from exc
                finally:
                    traceparent_var.reset(token)
        EVENTS_APPLIED.labels(self.service, "applied").inc(len(events) - duplicates)
        if duplicates:
            EVENTS_APPLIED.labels(self.service, "duplicate").inc(duplicates)
