"""Starting a background rescoring of a workspace: a rescore_jobs row the RescoreWorker works through.

One job per workspace runs at a time: a new one supersedes the running one (it would rescore the same leads
with an older model), so a burst of model changes rescans the workspace once more, not once per change.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Literal

import asyncpg

from services.common.db import Connection
from services.common.ids import first_id_at, new_id
from services.common.workers import notify

CHANNEL = "leads_rescoring"
Reason = Literal["model_changed", "conversion_model_trained", "nightly", "requested"]


async def start(
    conn: Connection, workspace_id: uuid.UUID, *, reason: Reason, model_version: int,
    created_by: uuid.UUID | None = None,
) -> uuid.UUID:
    """Queues a rescoring of every lead of the workspace in the caller's transaction; returns the job's id.
    `model_version` is the rule model's version the job scores with (for the record: the worker reads the
    model as it is when it scores each chunk)."""
    await conn.execute(
        """
        UPDATE leads.rescore_jobs SET state = 'superseded', updated_at = now(), finished_at = now()
        WHERE workspace_id = $1 AND state = 'running'
        """,
        workspace_id,
    )
    job_id = new_id()
    await conn.execute(
        """
        INSERT INTO leads.rescore_jobs (workspace_id, id, reason, model_version, total, created_by)
        VALUES ($1, $2, $3, $4,
                (SELECT count(*) FROM leads.leads WHERE workspace_id = $1 AND status <> 'merged'), $5)
        """,
        workspace_id, job_id, reason, model_version, created_by,
    )
    await notify(conn, CHANNEL)
    return job_id


JOB_COLUMNS = (
    "id, reason, state, model_version, total, done, changed, last_lead_id, created_at, updated_at, finished_at, "
    "created_by"
)
# A workspace whose last rescoring is older than this gets a nightly one: engagement decays with time, so
# stored scores drift from the live ones even when nothing changes.
NIGHTLY_EVERY = timedelta(hours=24)
# Only one replica looks for workspaces due a nightly rescoring at a time (a transaction-level advisory lock).
_NIGHTLY_LOCK = 0x6C656164_73636F72  # "leadscor"


async def latest(conn: Connection, workspace_id: uuid.UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {JOB_COLUMNS} FROM leads.rescore_jobs WHERE workspace_id = $1 ORDER BY id DESC LIMIT 1",
        workspace_id,
    )
    return row


async def get(conn: Connection, workspace_id: uuid.UUID, job_id: uuid.UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {JOB_COLUMNS} FROM leads.rescore_jobs WHERE workspace_id = $1 AND id = $2", workspace_id, job_id
    )
    return row


async def page(
    conn: Connection, workspace_id: uuid.UUID, limit: int, before: uuid.UUID | None
) -> list[asyncpg.Record]:
    """Jobs newest first (ids are UUIDv7), after the one `before` names."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""
        SELECT {JOB_COLUMNS} FROM leads.rescore_jobs
        WHERE workspace_id = $1 AND ($2::uuid IS NULL OR id < $2)
        ORDER BY id DESC LIMIT $3
        """,
        workspace_id, before, limit,
    )
    return rows


async def start_nightly(conn: Connection, now: datetime) -> list[uuid.UUID]:
    """Starts a `nightly` rescoring for each workspace that has leads and no rescoring started in the last
    NIGHTLY_EVERY; returns those workspaces. Nothing when another replica is doing the same right now."""
    if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _NIGHTLY_LOCK):
        return []
    # The workspaces with leads by a loose index scan of the leads' primary key (workspace_id, id): one index
    # probe per workspace instead of reading every lead. Ids are UUIDv7, so "started since" is an id range.
    due = await conn.fetch(
        """
        WITH RECURSIVE workspaces AS (
            (SELECT workspace_id FROM leads.leads ORDER BY workspace_id LIMIT 1)
            UNION ALL
            SELECT (SELECT l.workspace_id FROM leads.leads l WHERE l.workspace_id > w.workspace_id
                    ORDER BY l.workspace_id LIMIT 1)
            FROM workspaces w WHERE w.workspace_id IS NOT NULL
        )
        SELECT w.workspace_id, coalesce(m.version, 0) AS version FROM workspaces w
        LEFT JOIN leads.scoring_models m ON m.workspace_id = w.workspace_id
        WHERE w.workspace_id IS NOT NULL
          AND NOT EXISTS (SELECT FROM leads.rescore_jobs j WHERE j.workspace_id = w.workspace_id AND j.id >= $1)
        ORDER BY w.workspace_id
        """,
        first_id_at(now - NIGHTLY_EVERY),
    )
    for row in due:
        await start(conn, row["workspace_id"], reason="nightly", model_version=row["version"])
    return [row["workspace_id"] for row in due]
