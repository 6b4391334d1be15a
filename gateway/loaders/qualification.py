"""Per-request loader for leads' qualifications: one `GET /v1/leads/{id}/qualification` per lead, asked for once
however many fields want it."""

from __future__ import annotations

import uuid

from strawberry.dataloader import DataLoader

from gateway.clients.qualification import QualificationClient, QualificationRecord
from gateway.loaders.one_by_one import create_one_by_one_loader

QualificationLoader = DataLoader[uuid.UUID, QualificationRecord | None]


def create_qualification_loader(client: QualificationClient) -> QualificationLoader:
    return create_one_by_one_loader(client.get)
