"""What became of the deals opened from leads (deal.won, deal.lost), kept in lead_outcomes: the history the learned
conversion model trains on. Each new outcome asks for a retraining at the next nightly run."""

from __future__ import annotations

import uuid
from datetime import datetime

from services.common.db import Connection
from services.common.money import Money
from services.contracts import DealLostV1, DealWonV1
from services.leads import conversion


async def record_won(conn: Connection, won: DealWonV1, event_id: uuid.UUID) -> None:
    if won.lead_id is not None:
        await _record(conn, won.workspace_id, won.deal_id, won.lead_id, "won", won.amount, None, won.won_at, event_id)


async def record_lost(conn: Connection, lost: DealLostV1, event_id: uuid.UUID) -> None:
    if lost.lead_id is not None:
        await _record(
            conn, lost.workspace_id, lost.deal_id, lost.lead_id, "lost", lost.amount, lost.reason, lost.lost_at,
            event_id,
        )


async def _record(
    conn: Connection, workspace_id: uuid.UUID, deal_id: uuid.UUID, lead_id: uuid.UUID, outcome: str,
    amount: Money | None, reason: str | None, decided_at: datetime, event_id: uuid.UUID,
) -> None:
    """Keeps the deal's newest outcome: a deal reopened and then won replaces its loss, while an older event
    delivered late (after a newer one, or redelivered under a new id) changes nothing."""
    changed = await conn.fetchval(
        """
        INSERT INTO leads.lead_outcomes AS o
            (workspace_id, deal_id, lead_id, outcome, amount, currency, reason, decided_at, event_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        ON CONFLICT (workspace_id, deal_id) DO UPDATE
        SET lead_id = excluded.lead_id, outcome = excluded.outcome, amount = excluded.amount,
            currency = excluded.currency, reason = excluded.reason, decided_at = excluded.decided_at,
            event_id = excluded.event_id, received_at = now()
        WHERE o.decided_at < excluded.decided_at
        RETURNING true
        """,
        workspace_id, deal_id, lead_id, outcome, amount.amount if amount else None,
        amount.currency if amount else None, reason, decided_at, event_id,
    )
    if changed:
        await conversion.request_nightly_training(conn, workspace_id)
