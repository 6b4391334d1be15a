"""Per-request loaders for leads: lookups batched into `GET /v1/leads?ids=...`, and each lead's history
(one `GET /v1/leads/{id}/history` per lead, asked for once however many fields want it)."""

from __future__ import annotations

import uuid

from strawberry.dataloader import DataLoader

from gateway.clients.leads import MAX_IDS, HistoryRecord, LeadRecord, LeadsClient
from gateway.loaders.one_by_one import create_one_by_one_loader

LeadLoader = DataLoader[uuid.UUID, LeadRecord | None]
HistoryLoader = DataLoader[uuid.UUID, HistoryRecord | None]


def create_lead_loader(client: LeadsClient) -> LeadLoader:
    """A loader for one request only: its cache holds what this caller may see, so it must not be shared."""

    async def load(ids: list[uuid.UUID]) -> list[LeadRecord | None]:
        found = {lead.id: lead for lead in await client.by_ids(ids)}
        # A missing id is a lead the caller cannot see or that does not exist: both read as null.
        return [found.get(lead_id) for lead_id in ids]

    return DataLoader(load_fn=load, max_batch_size=MAX_IDS)


def create_history_loader(client: LeadsClient) -> HistoryLoader:
    """One request's lead histories; like the lead loader, never shared between callers."""
    return create_one_by_one_loader(client.history)
