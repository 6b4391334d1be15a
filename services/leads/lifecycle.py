"""The lead lifecycle: which status may follow which, and recording and announcing each move.

new -> working -> nurturing <-> working -> qualified -> converted, and from any open status to disqualified
(with a reason from the workspace's list). A disqualified lead can be reopened (working or nurturing);
converted and merged are final.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from services.common.auth import Principal
from services.common.db import Connection
from services.common.ids import new_id
from services.common.outbox import publish
from services.common.problems import Conflict, InvalidField
from services.contracts import LeadStatusChangedV1
from services.leads import assignment_queue
from services.leads.distribution import OPEN_STATUSES
from services.leads.intake import CaptureSettings
from services.leads.repository import COLUMNS
from services.leads.schemas import Status, StatusChange

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.new: frozenset({Status.working, Status.nurturing, Status.qualified, Status.disqualified}),
    Status.working: frozenset({Status.nurturing, Status.qualified, Status.disqualified}),
    Status.nurturing: frozenset({Status.working, Status.qualified, Status.disqualified}),
    Status.qualified: frozenset({Status.working, Status.nurturing, Status.converted, Status.disqualified}),
    Status.disqualified: frozenset({Status.working, Status.nurturing}),
    Status.converted: frozenset(),
    Status.merged: frozenset(),
}


def check_transition(current: Status, change: StatusChange, settings: CaptureSettings) -> None:
    if change.status not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none (it is final)"
        raise Conflict(f"A {current.value} lead cannot become {change.status.value}; allowed next: {allowed}.")
    if change.status is Status.disqualified:
        if not change.reason:
            raise InvalidField("reason", "Say why the lead is disqualified: one of the workspace's reasons.", "missing")
        if change.reason not in settings.disqualification_reasons:
            reasons = ", ".join(settings.disqualification_reasons)
            raise InvalidField("reason", f"Not one of the workspace's reasons: {reasons}.", "unknown_reason")
    elif change.reason is not None:
        raise InvalidField("reason", "A reason is given only when disqualifying.", "unexpected")


async def record_status(
    conn: Connection,
    principal: Principal,
    lead: asyncpg.Record,
    to: Status,
    *,
    reason: str | None = None,
    comment: str | None = None,
) -> asyncpg.Record:
    """Moves a (locked) lead to `to`, keeps the change and publishes lead.status_changed.

    A lead that leaves the open statuses leaves the assignment queue with it (a closed lead waits for nobody; a
    converted one waits only once a won deal queues it for a farmer), and its owner's load goes down, so the
    leads queued for want of room are tried again after the commit."""
    now = datetime.now(UTC)
    closes = lead["status"] in OPEN_STATUSES and to.value not in OPEN_STATUSES
    row = await conn.fetchrow(
        f"""
        UPDATE leads.leads SET status = $3, disqualification_reason = $4, status_changed_at = $5,
            updated_at = $5, version = version + 1,
            assignment_state = CASE WHEN $6 AND assignment_state IN ('pending', 'queued')
                                    THEN CASE WHEN owner_id IS NULL THEN 'unmatched' ELSE 'assigned' END
                                    ELSE assignment_state END
        WHERE workspace_id = $1 AND id = $2
        RETURNING {COLUMNS}
        """,
        lead["workspace_id"], lead["id"], to.value, reason if to is Status.disqualified else None, now, closes,
    )
    assert row is not None  # the caller holds the row lock
    if closes and lead["owner_id"] is not None:
        await assignment_queue.room_freed(conn, lead["workspace_id"], lead["owner_id"])
    await conn.execute(
        """
        INSERT INTO leads.lead_status_changes
            (workspace_id, id, lead_id, from_status, to_status, reason, comment, changed_by, changed_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        """,
        lead["workspace_id"], new_id(), lead["id"], lead["status"], to.value, reason, comment, principal.user_id,
        now,
    )
    await publish(
        conn,
        LeadStatusChangedV1(
            lead_id=lead["id"], workspace_id=lead["workspace_id"], from_status=lead["status"], to_status=to.value,
            reason=reason, comment=comment, owner_id=row["owner_id"], changed_by=principal.user_id, changed_at=now,
        ),
        workspace_id=lead["workspace_id"],
        subject=lead["id"],
    )
    return row
