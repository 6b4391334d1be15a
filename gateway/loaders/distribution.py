"""Per-request loaders for distribution: each lead's assignment record (one `GET /v1/leads/{id}/assignments` per
lead, asked for once however many fields want it) and each rule a record names."""

from __future__ import annotations

import asyncio
import uuid

from strawberry.dataloader import DataLoader

from gateway.clients.base import UpstreamRejected
from gateway.clients.distribution import AssignmentRecord, AssignmentRuleRecord, AssignmentRulesClient

AssignmentsLoader = DataLoader[uuid.UUID, list[AssignmentRecord] | None]
# Rules, like the roster, are read one GET per distinct id (`gateway.loaders.roster.create_one_by_one_loader`).
AssignmentRuleLoader = DataLoader[uuid.UUID, AssignmentRuleRecord | None]

# The endpoint takes one lead: a page of 100 leads asking for their assignments would open 100 requests at once.
ASSIGNMENTS_CONCURRENCY = 10


def create_assignments_loader(client: AssignmentRulesClient) -> AssignmentsLoader:
    """A loader for one request only: like the lead loader, it holds what this caller may see."""
    gate = asyncio.Semaphore(ASSIGNMENTS_CONCURRENCY)

    async def one(lead_id: uuid.UUID) -> list[AssignmentRecord] | None:
        async with gate:
            try:
                return (await client.assignments(lead_id)).items
            except UpstreamRejected as rejected:
                if rejected.status == 404:
                    return None  # gone, or no longer the caller's, since the lead itself was read
                raise

    async def load(ids: list[uuid.UUID]) -> list[list[AssignmentRecord] | BaseException | None]:
        # One failed read fails only its own field, not every lead's in the batch.
        return list(await asyncio.gather(*(one(lead_id) for lead_id in ids), return_exceptions=True))

    return DataLoader(load_fn=load)
