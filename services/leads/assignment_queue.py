"""The assignment queue's wake-ups: the AssignmentWorker's channel, and sending the leads that wait in a rule's
queue back to it when something that could let someone take them changed (a member, a rule, or a member's load
going down: a lead of theirs closed or given to someone else).

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


# A member with room for one more lead gets the next queued one they can take; a few more go back with it in case
# that one finds someone else first. The periodic retry covers the rest.
ROOM_BATCH = 10


async def room_freed(conn: Connection, workspace_id: uuid.UUID, member_id: uuid.UUID) -> int:
    """`member_id`'s load went down (an open lead of theirs was closed or went to someone else, or a client left
    its farmer): the oldest leads queued on rules whose pool holds them (their team's, or a list naming them) go
    back to the worker, which may give the next one to them as soon as the caller commits. Only those, and only a
    few: a workspace with thousands of queued leads must not rewrite them all on every closed lead.

    On the hot path of status changes and reassignments, so a lead another transaction holds is skipped instead
    of waited for: two transactions that each free room (each holding a lead the other would requeue) never wait
    on each other in a cycle. The one skipped is being requeued or changed by its holder; if not, the worker's
    periodic retry takes it."""
    result: str = await conn.execute(
        """
        UPDATE leads.leads SET assignment_state = 'pending'
        WHERE workspace_id = $1 AND id IN (
            SELECT l.id FROM leads.leads l
            JOIN leads.assignment_rules r ON r.workspace_id = l.workspace_id AND r.id = l.assignment_rule_id
            WHERE l.workspace_id = $1 AND l.assignment_state = 'queued'
              AND ($2 = ANY(r.member_ids) OR r.team_id = (
                  SELECT team_id FROM leads.members WHERE workspace_id = $1 AND id = $2))
            ORDER BY l.id LIMIT $3
            FOR UPDATE OF l SKIP LOCKED)
        """,
        workspace_id, member_id, ROOM_BATCH,
    )
    count = int(result.split()[-1])
    if count:
        await notify(conn, CHANNEL)
    return count
