"""The assignment queue: distributes the leads nobody owns yet, and tries the queued ones again.

Capture inserts a lead without an owner as `pending` and wakes this worker after its commit. Each step claims up
to BATCH pending leads of any workspace in id order (FOR UPDATE SKIP LOCKED: replicas share the queue and never
take the same lead) and assigns them by the rules, workspace by workspace, in one transaction with their records
and lead.assigned events. A lead nobody can take now becomes `queued` on its rule; a roster or rule change, and a
member's load going down (a lead of theirs closed or reassigned), send a workspace's queued leads back to
`pending` (assignment_queue), and every RETRY_SECONDS the worker does that for every workspace, which catches
working hours starting.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping, Sequence

import asyncpg

from services.common.db import Connection
from services.common.workers import QueueWorker
from services.leads import assignment_queue, distribution
from services.leads.repository import COLUMNS

BATCH = 100
# How often queued leads are tried again even when nothing announced a change (working hours start by the clock).
RETRY_SECONDS = 60.0


class AssignmentWorker(QueueWorker):
    channel = assignment_queue.CHANNEL
    poll_seconds = 5.0

    _last_retry = 0.0

    async def step(self) -> int:
        if time.monotonic() - self._last_retry >= RETRY_SECONDS:
            self._last_retry = time.monotonic()
            async with self.db.transaction() as conn:
                await assignment_queue.requeue(conn)
        async with self.db.transaction() as conn:
            rows = await conn.fetch(
                f"""
                SELECT {COLUMNS} FROM leads.leads WHERE assignment_state = 'pending'
                ORDER BY id LIMIT $1
                FOR UPDATE SKIP LOCKED
                """,
                BATCH,
            )
            if not rows:
                return 0
            by_workspace: dict[uuid.UUID, list[asyncpg.Record]] = {}
            for row in rows:
                by_workspace.setdefault(row["workspace_id"], []).append(row)
            # Workspaces in one order, so two workers lock the rules of several workspaces without a cycle.
            for workspace in sorted(by_workspace):
                await self._assign(conn, workspace, by_workspace[workspace])
        return len(rows)

    async def _assign(self, conn: Connection, workspace: uuid.UUID, leads: list[asyncpg.Record]) -> None:
        # Distributed: a new lead nobody owns, a qualified one for a closer, and a client (converted) for a farmer:
        # a closed lead leaves the queue when it closes, so a converted one here was queued by a won deal.
        settled = [lead for lead in leads if _settled(lead)]
        if settled:
            await conn.execute(
                """
                UPDATE leads.leads
                SET assignment_state = CASE WHEN owner_id IS NULL THEN 'unmatched' ELSE 'assigned' END
                WHERE workspace_id = $1 AND id = ANY($2::uuid[])
                """,
                workspace, [lead["id"] for lead in settled],
            )
        done = {lead["id"] for lead in settled}
        todo = [lead for lead in leads if lead["id"] not in done]
        if not todo:
            return
        assigner = await distribution.Assigner.load(conn, workspace)
        qualified = [lead["id"] for lead in todo if distribution.stage_of(lead) is not distribution.Stage.new]
        products = await distribution.qualification_products(conn, workspace, qualified) if qualified else {}
        await assigner.load_grades(todo)
        # Deciding is Python over what load() read (rules, roster, turns): in a thread, so a batch does not hold
        # up the requests this process is answering meanwhile. Nothing else touches the assigner until it ends.
        await asyncio.to_thread(_decide_all, assigner, todo, products)
        await assigner.save()


def _settled(lead: asyncpg.Record) -> bool:
    """Whether the lead has nothing to wait for: closed (but a client), or a new lead that has an owner."""
    stage = distribution.stage_of(lead)
    if stage is distribution.Stage.client:
        return False
    return lead["status"] not in distribution.OPEN_STATUSES or (
        stage is distribution.Stage.new and lead["owner_id"] is not None
    )


def _decide_all(
    assigner: distribution.Assigner, leads: list[asyncpg.Record], products: Mapping[uuid.UUID, Sequence[str]]
) -> None:
    for lead in leads:
        assigner.record(lead, assigner.decide(lead, products.get(lead["id"], ())))
