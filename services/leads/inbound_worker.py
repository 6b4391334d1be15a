"""The inbound queue: turns stored webhook requests into leads, or quarantines them with the reason.

Each step claims up to BATCH pending requests of any workspace (FOR UPDATE SKIP LOCKED: replicas share the
queue and never take the same row) and works them in one transaction, each in its own savepoint, so a lead and
its request's new status commit together: if the process dies mid-batch, the rows are still pending and
nothing was taken in twice. A request that cannot become a lead (bad body, mapping, or lead) is quarantined
with the field errors; an unexpected failure leaves it pending for another try, until MAX_ATTEMPTS.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import asyncpg

from services.common.auth import Principal, Role
from services.common.db import Connection
from services.common.workers import QueueWorker
from services.leads import capture, intake, mapping
from services.leads.schemas import Via

log = logging.getLogger("voronka.leads.inbound")

BATCH = 100
# Unexpected failures of one request before it is quarantined as processing_failed.
MAX_ATTEMPTS = 5
# Errors that say nothing about the request (two batches took the same lead's locks in opposite orders): the
# request is tried again without counting an attempt.
TRANSIENT = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


class InboundWorker(QueueWorker):
    channel = "leads_inbound"

    async def step(self) -> int:
        async with self.db.transaction() as conn:
            rows = await conn.fetch(
                """
                SELECT workspace_id, id, source_id, content_type, body, attempts FROM leads.inbound_requests
                WHERE status = 'pending'
                ORDER BY id LIMIT $1
                FOR UPDATE SKIP LOCKED
                """,
                BATCH,
            )
            if not rows:
                return 0
            sources = {
                (s["workspace_id"], s["id"]): s
                for s in await conn.fetch(
                    """
                    SELECT workspace_id, id, name, channel, mapping FROM leads.sources
                    WHERE (workspace_id, id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[]))
                    """,
                    [r["workspace_id"] for r in rows], [r["source_id"] for r in rows],
                )
            }
            settings: dict[uuid.UUID, intake.CaptureSettings] = {}
            for row in rows:
                workspace = row["workspace_id"]
                if workspace not in settings:
                    settings[workspace] = await intake.load_settings(conn, workspace)
                await self._work(conn, row, sources.get((workspace, row["source_id"])), settings[workspace])
        return len(rows)

    async def _work(
        self,
        conn: Connection,
        row: asyncpg.Record,
        source: asyncpg.Record | None,
        settings: intake.CaptureSettings,
    ) -> None:
        try:
            async with conn.transaction():  # a savepoint: a failed request leaves the batch's others intact
                captured = await self._take_in(conn, row, source, settings)
        except (mapping.MappingError, intake.InvalidLead) as exc:
            await _quarantine(conn, row, exc.errors)
            return
        except TRANSIENT:
            log.info("inbound request met a concurrent batch; trying again",
                     extra={"inbound_request_id": str(row["id"])})
            return
        except Exception as exc:
            attempts = row["attempts"] + 1
            log.exception(
                "inbound request failed", extra={"inbound_request_id": str(row["id"]), "attempts": attempts}
            )
            if attempts >= MAX_ATTEMPTS:
                message = f"Processing failed {attempts} times ({type(exc).__name__}); replay it to try again."
                await _quarantine(conn, row, [{"field": "body", "code": "processing_failed", "message": message}])
            else:
                await conn.execute(
                    "UPDATE leads.inbound_requests SET attempts = $3 WHERE workspace_id = $1 AND id = $2",
                    row["workspace_id"], row["id"], attempts,
                )
            return
        await conn.execute(
            """
            UPDATE leads.inbound_requests
            SET status = 'processed', lead_id = $3, outcome = $4, errors = '[]'::jsonb, attempts = attempts + 1,
                processed_at = now()
            WHERE workspace_id = $1 AND id = $2
            """,
            row["workspace_id"], row["id"], captured.lead["id"], captured.outcome,
        )

    async def _take_in(
        self,
        conn: Connection,
        row: asyncpg.Record,
        source: asyncpg.Record | None,
        settings: intake.CaptureSettings,
    ) -> capture.Captured:
        if source is None:
            raise mapping.MappingError(
                [{"field": "source_id", "code": "source_missing", "message": "The request's source no longer exists."}]
            )
        payload = mapping.parse_body(row["content_type"], row["body"])
        raw: dict[str, Any] = mapping.apply_mapping(payload, source["mapping"])
        # Where the lead came from is the source's to say, whatever the payload claims.
        raw.update(source=source["name"], source_id=str(source["id"]), channel=source["channel"])
        lead = intake.validate_lead(raw, settings)
        # The source stands for whoever sent the request: it is the `created_by` of the leads it brings.
        principal = Principal(workspace_id=row["workspace_id"], user_id=source["id"], role=Role.service)
        [captured] = await capture.capture(conn, principal, [lead], via=Via.webhook, origin_ids=[row["id"]])
        return captured


async def _quarantine(conn: Connection, row: asyncpg.Record, errors: list[dict[str, str]]) -> None:
    await conn.execute(
        """
        UPDATE leads.inbound_requests
        SET status = 'quarantined', errors = $3, attempts = attempts + 1, processed_at = now()
        WHERE workspace_id = $1 AND id = $2
        """,
        row["workspace_id"], row["id"], errors,
    )
