"""Batches the lead lookups of one GraphQL request into `GET /v1/leads?ids=...` calls."""

from __future__ import annotations

import uuid

from strawberry.dataloader import DataLoader

from gateway.clients.leads import MAX_IDS, LeadRecord, LeadsClient

LeadLoader = DataLoader[uuid.UUID, LeadRecord | None]


def create_lead_loader(client: LeadsClient) -> LeadLoader:
    """A loader for one request only: its cache holds what this caller may see, so it must not be shared."""

    async def load(ids: list[uuid.UUID]) -> list[LeadRecord | None]:
        found = {lead.id: lead for lead in await client.by_ids(ids)}
        # A missing id is a lead the caller cannot see or that does not exist: both read as null.
        return [found.get(lead_id) for lead_id in ids]

    return DataLoader(load_fn=load, max_batch_size=MAX_IDS)
