"""Per-request loader for leads' scores: one `GET /v1/leads/{id}/score` per lead, asked for once however many
fields want it."""

from __future__ import annotations

import uuid

from strawberry.dataloader import DataLoader

from gateway.clients.scoring import ScoreRecord, ScoringClient
from gateway.loaders.one_by_one import create_one_by_one_loader

ScoreLoader = DataLoader[uuid.UUID, ScoreRecord | None]


def create_score_loader(client: ScoringClient) -> ScoreLoader:
    return create_one_by_one_loader(client.score)
