"""Writing events: the transactional outbox, and the operator's view of dead letters.

`publish` inserts the event in the caller's transaction, so the state change and its announcement commit
together or not at all; the dispatcher delivers it after commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from services.common.db import Connection, wake_after_commit
from services.common.ids import new_id
from services.common.observability import current_traceparent
from services.common.settings import SERVICES
from services.contracts import EventPayload


def notify_channel(schema: str) -> str:
    return f"{schema}_outbox"


def checked_schema(schema: str) -> str:
    # Schema names are interpolated into SQL; only the four known ones may pass.
    if schema not in SERVICES:
        raise ValueError(f"unknown service schema {schema!r}")
    return schema


def cloud_event(payload: EventPayload, *, workspace_id: uuid.UUID, subject: uuid.UUID | str) -> dict[str, Any]:
    """The CloudEvent for a payload, with a fresh id and the current trace."""
    return {
        "specversion": "1.0",
        "id": str(new_id()),
        "source": f"/voronka/{checked_schema(payload.producer)}",
        "type": payload.type(),
        "subject": str(subject),
        "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        "workspaceid": str(workspace_id),
        "traceparent": current_traceparent(),
        "data": payload.model_dump(mode="json"),
    }


async def publish(
    conn: Connection,
    payload: EventPayload,
    *,
    workspace_id: uuid.UUID,
    subject: uuid.UUID | str,
) -> dict[str, Any]:
    """Adds the event to the producer's outbox inside the current transaction; returns the CloudEvent."""
    schema = checked_schema(payload.producer)
    event = cloud_event(payload, workspace_id=workspace_id, subject=subject)
    # One round trip: the insert, and a wake-up for the dispatchers delivered when the transaction commits.
    await conn.execute(
        f"""
        WITH added AS (
            INSERT INTO {schema}.outbox (workspace_id, id, type, subject, occurred_at, event)
            VALUES ($1, $2, $3, $4, $5, $6)
        )
        SELECT {wake_dispatchers(schema)}
        """,
        workspace_id, uuid.UUID(event["id"]), event["type"], event["subject"],
        datetime.fromisoformat(event["time"]), event,
    )
    return event


def event_rows(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """CloudEvents (from `cloud_event`) as the rows `events_insert` takes, as one JSON parameter."""
    return [
        {
            "workspace_id": e["workspaceid"], "id": e["id"], "type": e["type"], "subject": e["subject"],
            "occurred_at": e["time"], "event": e,
        }
        for e in events
    ]


def events_insert(schema: str, param: int) -> str:
    """SQL adding the `event_rows` passed as `$param` to the outbox, in order: for a CTE of a larger statement,
    which must also select `wake_dispatchers(schema)` once (publish_many shows how)."""
    return f"""
        INSERT INTO {checked_schema(schema)}.outbox (workspace_id, id, type, subject, occurred_at, event)
        SELECT workspace_id, id, type, subject, occurred_at, event
        FROM jsonb_to_recordset(${param}::jsonb) AS r(
            workspace_id uuid, id uuid, type text, subject text, occurred_at timestamptz, event jsonb
        )
    """


def wake_dispatchers(schema: str) -> str:
    """SQL that wakes the producer's dispatchers when the transaction commits: `NULL` inside a
    `Database.transaction()`, which wakes them after its commit (see `db.wake_after_commit`), else a NOTIFY
    (notifications of one transaction fold into one)."""
    channel = notify_channel(checked_schema(schema))
    return "NULL" if wake_after_commit(channel) else f"pg_notify('{channel}', '')"


async def publish_many(conn: Connection, schema: str, events: Sequence[dict[str, Any]]) -> None:
    """Adds many CloudEvents (from `cloud_event`) in one statement, in order, inside the current transaction."""
    if events:
        await conn.execute(
            f"WITH added AS ({events_insert(schema, 1)}) SELECT {wake_dispatchers(schema)}", event_rows(events)
        )


async def list_dead_letters(conn: Connection, schema: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""
        SELECT subscriber, workspace_id, event_id, position, type, error, attempts, status, dead_at, redriven_at
        FROM {checked_schema(schema)}.dead_letters
        WHERE status <> 'redriven'
        ORDER BY dead_at, position
        """
    )
    return [dict(row) for row in rows]


async def redrive_dead_letters(conn: Connection, schema: str, event_id: uuid.UUID | None) -> int:
    """Asks the dispatcher to deliver dead letters again (all, or one event); returns how many."""
    result: str = await conn.execute(
        f"""
        UPDATE {checked_schema(schema)}.dead_letters SET status = 'redrive'
        WHERE status = 'dead' AND ($1::uuid IS NULL OR event_id = $1)
        """,
        event_id,
    )
    await conn.execute(f"SELECT pg_notify('{notify_channel(schema)}', '')")
    return int(result.split()[-1])
