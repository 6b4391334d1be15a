"""The inbound queue: turns stored webhook requests into leads, or quarantines them with the reason.

Each step claims up to BATCH pending requests of any workspace (FOR UPDATE SKIP LOCKED: replicas share the
queue and never take the same row) and works them in one transaction, so a lead and its request's new status
commit together: if the process dies mid-batch, the rows are still pending and
nothing was taken in twice. The batch's valid requests are taken in with one set-based capture per source
(a few statements for a hundred leads, not a hundred savepoints); if that fails, request by request, so one
poisoned request cannot hold the others back. A request that cannot become a lead (bad body, mapping, or
lead) is quarantined with the field errors; an unexpected failure leaves it pending for another try, until
MAX_ATTEMPTS.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import asyncpg

from services.common.auth import Principal, Role
from services.common.db import Connection
from services.common.workers import QueueWorker
from services.leads import capture, intake, mapping
from services.leads.schemas import LeadCreate, Via

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
            for workspace in {r["workspace_id"] for r in rows}:
                settings[workspace] = await intake.load_settings(conn, workspace)
            # Mapping and validation first, for the whole batch, in a thread: a hundred requests are ~10 ms of
            # CPU that would otherwise stall the webhooks this process is answering meanwhile (p99 95 ms).
            checked = await asyncio.to_thread(_prepare_all, rows, sources, settings)
            by_source: dict[tuple[uuid.UUID, uuid.UUID], list[tuple[asyncpg.Record, LeadCreate]]] = {}
            for row, outcome in zip(rows, checked, strict=True):
                if isinstance(outcome, mapping.MappingError | intake.InvalidLead):
                    await _quarantine(conn, row, outcome.errors)
                elif isinstance(outcome, Exception):
                    await _failed(conn, row, outcome)
                else:
                    by_source.setdefault((row["workspace_id"], row["source_id"]), []).append((row, outcome))
            for (workspace, source_id), batch in by_source.items():
                await self._take_in(conn, workspace, source_id, batch)
        return len(rows)

    async def _take_in(
        self,
        conn: Connection,
        workspace: uuid.UUID,
        source_id: uuid.UUID,
        batch: list[tuple[asyncpg.Record, LeadCreate]],
    ) -> None:
        """One capture for a source's requests; if it fails, request by request to find the one at fault."""
        # The source stands for whoever sent the requests: it is the `created_by` of the leads they bring.
        principal = Principal(workspace_id=workspace, user_id=source_id, role=Role.service)
        try:
            async with conn.transaction():  # a savepoint: a failure leaves the rest of the step intact
                captured = await capture.capture(
                    conn, principal, [lead for _, lead in batch], via=Via.webhook,
                    origin_ids=[row["id"] for row, _ in batch],
                )
        except TRANSIENT:
            log.info("inbound requests met a concurrent batch; trying again", extra={"requests": len(batch)})
            return
        except Exception as exc:
            if len(batch) == 1:
                await _failed(conn, batch[0][0], exc)
                return
            for one in batch:
                await self._take_in(conn, workspace, source_id, [one])
            return
        await conn.execute(
            """
            UPDATE leads.inbound_requests r
            SET status = 'processed', lead_id = d.lead_id, outcome = d.outcome, errors = '[]'::jsonb,
                attempts = r.attempts + 1, processed_at = now()
            FROM unnest($2::uuid[], $3::uuid[], $4::text[]) AS d(id, lead_id, outcome)
            WHERE r.workspace_id = $1 AND r.id = d.id
            """,
            workspace, [row["id"] for row, _ in batch], [c.lead["id"] for c in captured],
            [c.outcome for c in captured],
        )


def _prepare_all(
    rows: list[asyncpg.Record],
    sources: dict[tuple[uuid.UUID, uuid.UUID], asyncpg.Record],
    settings: dict[uuid.UUID, intake.CaptureSettings],
) -> list[LeadCreate | Exception]:
    """Each request's lead, or what stopped it (mapping or validation errors; anything unexpected)."""
    outcomes: list[LeadCreate | Exception] = []
    for row in rows:
        try:
            source = sources.get((row["workspace_id"], row["source_id"]))
            outcomes.append(_prepared(row, source, settings[row["workspace_id"]]))
        except Exception as exc:
            outcomes.append(exc)
    return outcomes


def _prepared(
    row: asyncpg.Record, source: asyncpg.Record | None, settings: intake.CaptureSettings
) -> LeadCreate:
    if source is None:
        raise mapping.MappingError(
            [{"field": "source_id", "code": "source_missing", "message": "The request's source no longer exists."}]
        )
    payload = mapping.parse_body(row["content_type"], row["body"])
    raw: dict[str, Any] = mapping.apply_mapping(payload, source["mapping"])
    # Where the lead came from is the source's to say, whatever the payload claims.
    raw.update(source=source["name"], source_id=str(source["id"]), channel=source["channel"])
    return intake.validate_lead(raw, settings)


async def _failed(conn: Connection, row: asyncpg.Record, exc: Exception) -> None:
    """An unexpected failure: the request stays pending for another try, until MAX_ATTEMPTS."""
    attempts = row["attempts"] + 1
    log.error(
        "inbound request failed", exc_info=exc, extra={"inbound_request_id": str(row["id"]), "attempts": attempts}
    )
    if attempts >= MAX_ATTEMPTS:
        message = f"Processing failed {attempts} times ({type(exc).__name__}); replay it to try again."
        await _quarantine(conn, row, [{"field": "body", "code": "processing_failed", "message": message}])
    else:
        await conn.execute(
            "UPDATE leads.inbound_requests SET attempts = $3 WHERE workspace_id = $1 AND id = $2",
            row["workspace_id"], row["id"], attempts,
        )


async def _quarantine(conn: Connection, row: asyncpg.Record, errors: list[dict[str, str]]) -> None:
    await conn.execute(
        """
        UPDATE leads.inbound_requests
        SET status = 'quarantined', errors = $3, attempts = attempts + 1, processed_at = now()
        WHERE workspace_id = $1 AND id = $2
        """,
        row["workspace_id"], row["id"], errors,
    )
