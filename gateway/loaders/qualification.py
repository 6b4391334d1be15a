"""Per-request loader for leads' qualifications: one `GET /v1/leads/{id}/qualification` per lead, asked for once
however many fields want it."""

from __future__ import annotations

import asyncio
import uuid

from strawberry.dataloader import DataLoader

from gateway.clients.base import UpstreamRejected
from gateway.clients.qualification import QualificationClient, QualificationRecord

QualificationLoader = DataLoader[uuid.UUID, QualificationRecord | None]

# The endpoint takes one lead: a page of 100 leads asking for their answers would open 100 requests at once.
QUALIFICATION_CONCURRENCY = 10


def create_qualification_loader(client: QualificationClient) -> QualificationLoader:
    """A loader for one request only: like the lead loader, it holds what this caller may see."""
    gate = asyncio.Semaphore(QUALIFICATION_CONCURRENCY)

    async def one(lead_id: uuid.UUID) -> QualificationRecord | None:
        async with gate:
            try:
                return await client.get(lead_id)
            except UpstreamRejected as rejected:
                if rejected.status == 404:
                    return None  # gone, or no longer the caller's, since the lead itself was read
                raise

    async def load(ids: list[uuid.UUID]) -> list[QualificationRecord | BaseException | None]:
        # One failed read fails only its own field, not every lead's in the batch.
        return list(await asyncio.gather(*(one(lead_id) for lead_id in ids), return_exceptions=True))

    return DataLoader(load_fn=load)
