"""Starting a background rescoring of a workspace: a rescore_jobs row the RescoreWorker works through.

One job per workspace runs at a time: a new one supersedes the running one (it would rescore the same leads
with an older model), so a burst of model changes rescans the workspace once more, not once per change.
"""

from __future__ import annotations

import uuid
from typing import Literal

from services.common.db import Connection
from services.common.ids import new_id
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
