"""Per-request loaders for leads: lookups batched into `GET /v1/leads?ids=...`, and each lead's history
(one `GET /v1/leads/{id}/history` per lead, asked for once however many fields want it)."""

from __future__ import annotations

import asyncio
import uuid

from strawberry.dataloader import DataLoader

from gateway.clients.base import UpstreamRejected
from gateway.clients.leads import MAX_IDS, HistoryRecord, LeadRecord, LeadsClient

LeadLoader = DataLoader[uuid.UUID, LeadRecord | None]
HistoryLoader = DataLoader[uuid.UUID, HistoryRecord | None]

# The history endpoint takes one lead: a page of 100 leads asking for it would open 100 requests at once.
HISTORY_CONCURRENCY = 10


def create_lead_loader(client: LeadsClient) -> LeadLoader:
    """A loader for one request only: its cache holds what this caller may see, so it must not be shared."""

    async def load(ids: list[uuid.UUID]) -> list[LeadRecord | None]:
        found = {lead.id: lead for lead in await client.by_ids(ids)}
        # A missing id is a lead the caller cannot see or that does not exist: both read as null.
        return [found.get(lead_id) for lead_id in ids]

    return DataLoader(load_fn=load, max_batch_size=MAX_IDS)


def create_history_loader(client: LeadsClient) -> HistoryLoader:
    """One request's lead histories; like the lead loader, never shared between callers."""
    gate = asyncio.Semaphore(HISTORY_CONCURRENCY)

    async def one(lead_id: uuid.UUID) -> HistoryRecord | None:
        async with gate:
            try:
                return await client.history(lead_id)
            except UpstreamRejected as rejected:
                if rejected.status == 404:
                    return None  # gone, or no longer the caller's, since the lead itself was read
                raise

    async def load(ids: list[uuid.UUID]) -> list[HistoryRecord | BaseException | None]:
        # One failed history fails only its own field, not every lead's in the batch.
        return list(await asyncio.gather(*(one(lead_id) for lead_id in ids), return_exceptions=True))

    return DataLoader(load_fn=load)
