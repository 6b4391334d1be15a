"""The assignment queue's wake-ups: the AssignmentWorker's channel, and sending the leads that wait in a rule's
queue back to it when something that could let someone take them changed (a member, a rule).

Its own module because the roster (which changes members) and distribution (which reads the roster) both use it.
"""

from __future__ import annotations

import uuid

from services.common.db import Connection
from services.common.workers import notify

CHANNEL = "leads_assignment"


async def requeue(conn: Connection, workspace_id: uuid.UUID | None = None) -> int:
    """Makes the workspace's queued leads (every workspace's, without one) pending again, so the worker tries
    them once more after the caller's transaction commits; returns how many. A partial index holds only pending
    and queued leads, so this reads nothing else."""
    result: str = await conn.execute(
        """
        UPDATE leads.leads SET assignment_state = 'pending'
        WHERE assignment_state = 'queued' AND ($1::uuid IS NULL OR workspace_id = $1)
        """,
        workspace_id,
    )
    count = int(result.split()[-1])
    if count:
        await notify(conn, CHANNEL)
    return count
