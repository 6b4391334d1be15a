"""Rescoring in the background: works through a workspace's leads for a rescore job (rescoring.start) in id order,
a chunk per step, and once a day starts a nightly job for every workspace, so decayed engagement reaches the
stored scores.

A chunk commits with its checkpoint (`last_lead_id`, `done`, `changed`) in one transaction: after a crash the job
resumes after the last chunk that committed, and no lead.scored is published twice (score_store only publishes
what moved from the stored grade). The job row is claimed FOR UPDATE SKIP LOCKED for each chunk, and only while
it is `running`: a job superseded by a newer one stops at its next chunk.

While a chunk is being written, the next one is read and computed on a second connection: PostgreSQL writes
while Python computes, instead of each waiting for the other. On this 2-core machine, where both share the cores,
that took 196,000 leads from ~18k to ~20k leads/s; with the database on its own machine it overlaps more.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from services.common.db import Connection, Database
from services.common.workers import QueueWorker
from services.leads import rescoring, score_store

# Leads per chunk (one transaction). Measured on 196,000 leads: 500 to 2,000 a chunk rescored at the same speed
# (19-22k leads/s, within the noise) and 4,000 slower, while the event loop's p99 stall (building a chunk's inputs
# runs on it) grew from 15 ms at 500 to 65 ms at 1,000 and 110 ms at 2,000. A chunk also bounds how long a model
# change waits to supersede a running rescoring (the chunk holds the job's row).
CHUNK = 1000
# How often to look for workspaces due a nightly rescoring; the first look is one interval after start.
NIGHTLY_CHECK_SECONDS = 600.0


@dataclass
class _Ahead:
    """The next chunk of a job, being read and computed: the chunk after `after`."""

    job_id: uuid.UUID
    after: uuid.UUID
    task: asyncio.Task[tuple[list[uuid.UUID], score_store.Computed]]


async def _next_ids(conn: Connection, workspace_id: uuid.UUID, after: uuid.UUID | None) -> list[uuid.UUID]:
    rows = await conn.fetch(
        """
        SELECT id FROM leads.leads
        WHERE workspace_id = $1 AND ($2::uuid IS NULL OR id > $2) AND status <> 'merged'
        ORDER BY id LIMIT $3
        """,
        workspace_id, after, CHUNK,
    )
    return [r["id"] for r in rows]


class RescoreWorker(QueueWorker):
    channel = rescoring.CHANNEL
    poll_seconds = 5.0

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self._last_nightly_check = time.monotonic()
        self._ahead: _Ahead | None = None

    async def step(self) -> int:
        if time.monotonic() - self._last_nightly_check >= NIGHTLY_CHECK_SECONDS:
            self._last_nightly_check = time.monotonic()
            await self.start_nightly()
        ahead, self._ahead = self._ahead, None
        async with self.db.transaction() as conn:
            # The job least recently advanced: several workspaces' jobs take turns.
            job = await conn.fetchrow(
                """
                SELECT workspace_id, id, reason, last_lead_id FROM leads.rescore_jobs WHERE state = 'running'
                ORDER BY updated_at LIMIT 1 FOR UPDATE SKIP LOCKED
                """
            )
            if ahead is not None and (job is None or (ahead.job_id, ahead.after) != (job["id"], job["last_lead_id"])):
                # Another job's chunk, or one a crash rolled back the checkpoint of: read it again.
                await _cancel(ahead)
                ahead = None
            if job is None:
                return 0
            workspace = job["workspace_id"]
            if ahead is not None:
                ids, computed = await ahead.task
            else:
                ids = await _next_ids(conn, workspace, job["last_lead_id"])
                computed = await score_store.compute(conn, workspace, ids)
            if len(ids) == CHUNK:
                self._ahead = _Ahead(job["id"], ids[-1], asyncio.create_task(self._compute(workspace, ids[-1])))
            scored = await score_store.store(conn, computed, cause=job["reason"])
            await conn.execute(
                """
                UPDATE leads.rescore_jobs SET
                    -- Leads taken in meanwhile (their ids are larger) are scored too: total grows with them.
                    done = done + $3, total = greatest(total, done + $3), changed = changed + $4,
                    last_lead_id = coalesce($5, last_lead_id), updated_at = now(),
                    state = CASE WHEN $6 THEN 'done' ELSE state END,
                    finished_at = CASE WHEN $6 THEN now() END
                WHERE workspace_id = $1 AND id = $2
                """,
                workspace, job["id"], len(ids), scored.changed, ids[-1] if ids else None, len(ids) < CHUNK,
            )
        return max(len(ids), 1)

    async def _compute(self, workspace_id: uuid.UUID, after: uuid.UUID) -> tuple[list[uuid.UUID], score_store.Computed]:
        async with self.db.connection() as conn:
            ids = await _next_ids(conn, workspace_id, after)
            return ids, await score_store.compute(conn, workspace_id, ids)

    async def start_nightly(self) -> int:
        """Starts the nightly rescoring of the workspaces due one; how many."""
        async with self.db.transaction() as conn:
            return len(await rescoring.start_nightly(conn, datetime.now(UTC)))

    async def stop(self) -> None:
        if self._ahead is not None:
            await _cancel(self._ahead)
            self._ahead = None
        await super().stop()


async def _cancel(ahead: _Ahead) -> None:
    ahead.task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await ahead.task
