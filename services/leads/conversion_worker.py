"""The conversion trainer: trains the model of each workspace whose conversion_requests row is due (asked by a
person: now; new history: the next nightly run), stores the result and deletes the request in one transaction.

The request row stays locked (FOR UPDATE SKIP LOCKED) while its workspace trains, so replicas never train one
workspace twice at once, and a crash leaves the request for the next try. Recording a deal's outcome asks for
the nightly run without waiting for that lock (conversion.request_nightly_training), so event delivery goes on
while a big workspace trains. Leads disqualified since a workspace's last training come with no event: a sweep
every SWEEP_SECONDS asks the nightly run for them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

from services.common.workers import QueueWorker
from services.leads import conversion, conversion_training

log = logging.getLogger("voronka.leads.conversion")

SWEEP_SECONDS = 3600.0
RECENT_OUTCOME_MARGIN = timedelta(seconds=30)


class ConversionTrainer(QueueWorker):
    channel = conversion.CHANNEL
    # Nightly requests fall due by the clock, not by a notification: a minute late is on time.
    poll_seconds = 60.0

    _last_sweep = 0.0

    async def step(self) -> int:
        if time.monotonic() - self._last_sweep >= SWEEP_SECONDS:
            self._last_sweep = time.monotonic()
            await self.sweep()
        async with self.db.transaction() as conn:
            request = await conn.fetchrow(
                """
                SELECT workspace_id, requested_by FROM leads.conversion_requests WHERE due_at <= now()
                ORDER BY due_at LIMIT 1
                FOR UPDATE SKIP LOCKED
                """
            )
            if request is None:
                return 0
            workspace = request["workspace_id"]
            loaded_at = await conn.fetchval("SELECT clock_timestamp()")
            examples = await conversion_training.load_examples(conn, workspace)
            try:
                training = await asyncio.to_thread(conversion_training.train, examples)
            except Exception:
                # A history the trainer cannot handle is tried again the next night, not in a loop meanwhile.
                log.exception("training the conversion model failed", extra={"workspace_id": str(workspace)})
                await conn.execute(
                    "UPDATE leads.conversion_requests SET due_at = $2 WHERE workspace_id = $1",
                    workspace, conversion.next_nightly(datetime.now(UTC)),
                )
                return 1
            await conversion_training.save(conn, workspace, training, request["requested_by"])
            await conn.execute("DELETE FROM leads.conversion_requests WHERE workspace_id = $1", workspace)
            # An outcome recorded while this trained found our request and left it (outcomes.py), so it may be
            # missing from these examples: ask for the next night. The margin covers an inbox transaction that
            # began before our examples were read and committed after (they take milliseconds).
            await conn.execute(
                """
                INSERT INTO leads.conversion_requests (workspace_id, due_at)
                SELECT $1, $2 WHERE EXISTS (SELECT FROM leads.lead_outcomes
                                            WHERE workspace_id = $1 AND received_at > $3)
                """,
                workspace, conversion.next_nightly(datetime.now(UTC)), loaded_at - RECENT_OUTCOME_MARGIN,
            )
        return 1

    async def sweep(self) -> int:
        """Asks for a nightly retraining of each workspace with leads disqualified since its newest model (they
        are new examples that came with no deal event); returns how many workspaces it asked for."""
        async with self.db.transaction() as conn:
            asked: int = await conn.fetchval(
                """
                WITH newest AS (
                    SELECT DISTINCT ON (workspace_id) workspace_id, trained_at FROM leads.conversion_models
                    ORDER BY workspace_id, id DESC
                ), asked AS (
                    INSERT INTO leads.conversion_requests (workspace_id, due_at)
                    SELECT m.workspace_id, $1 FROM newest m
                    WHERE EXISTS (SELECT 1 FROM leads.leads l
                                  WHERE l.workspace_id = m.workspace_id AND l.status = 'disqualified'
                                    AND l.status_changed_at > m.trained_at)
                    ON CONFLICT (workspace_id) DO NOTHING
                    RETURNING 1
                )
                SELECT count(*) FROM asked
                """,
                conversion.next_nightly(datetime.now(UTC)),
            )
        return asked
