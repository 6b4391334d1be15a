"""The score queue: gives leads whose inputs changed (capture, edits, qualification answers, merges) their new
stored score and lead.scored, shortly after the change commits.

Each step claims up to BATCH queued leads of any workspace with one DELETE over FOR UPDATE SKIP LOCKED (replicas
share the queue, never take the same lead) and scores them in the same transaction: a crash puts them back. A
lead changed again while it is being scored is queued again (the change's insert waits for this delete to commit),
so the last change always gets scored.
"""

from __future__ import annotations

import uuid

from services.common.workers import QueueWorker
from services.leads import score_store

BATCH = 500


class ScoringWorker(QueueWorker):
    channel = score_store.CHANNEL
    poll_seconds = 5.0
    # A stored score may follow its change by a moment: at 1 lead per request, a step per lead cost ~1 ms of the
    # process's CPU (a transaction, the inputs' queries, the writes); lingering batches them.
    linger_seconds = 0.05

    async def step(self) -> int:
        async with self.db.transaction() as conn:
            rows = await conn.fetch(
                """
                DELETE FROM leads.score_queue WHERE (workspace_id, lead_id) IN (
                    SELECT workspace_id, lead_id FROM leads.score_queue LIMIT $1 FOR UPDATE SKIP LOCKED
                )
                RETURNING workspace_id, lead_id
                """,
                BATCH,
            )
            by_workspace: dict[uuid.UUID, list[uuid.UUID]] = {}
            for row in rows:
                by_workspace.setdefault(row["workspace_id"], []).append(row["lead_id"])
            # Workspaces in one order, and leads in id order within each (score_store), so two writers lock
            # score rows in one global order.
            for workspace in sorted(by_workspace):
                await score_store.score(conn, workspace, by_workspace[workspace], cause="lead_changed")
        return len(rows)
