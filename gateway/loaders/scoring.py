"""Per-request loader for leads' scores: one `GET /v1/leads/{id}/score` per lead, asked for once however many
fields want it."""

from __future__ import annotations

import asyncio
import uuid

from strawberry.dataloader import DataLoader

from gateway.clients.base import UpstreamRejected
from gateway.clients.scoring import ScoreRecord, ScoringClient

ScoreLoader = DataLoader[uuid.UUID, ScoreRecord | None]

# The endpoint takes one lead: a page of 100 leads asking for their scores would open 100 requests at once.
SCORE_CONCURRENCY = 10


def create_score_loader(client: ScoringClient) -> ScoreLoader:
    """A loader for one request only: like the lead loader, it holds what this caller may see."""
    gate = asyncio.Semaphore(SCORE_CONCURRENCY)

    async def one(lead_id: uuid.UUID) -> ScoreRecord | None:
        async with gate:
            try:
                return await client.score(lead_id)
            except UpstreamRejected as rejected:
                if rejected.status == 404:
                    return None  # gone, or no longer the caller's, since the lead itself was read
                raise

    async def load(ids: list[uuid.UUID]) -> list[ScoreRecord | BaseException | None]:
        # One failed read fails only its own field, not every lead's in the batch.
        return list(await asyncio.gather(*(one(lead_id) for lead_id in ids), return_exceptions=True))

    return DataLoader(load_fn=load)
