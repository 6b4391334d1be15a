"""Per-request loaders for distribution: each lead's assignment records (one `GET /v1/leads/{id}/assignments` per
lead, asked for once however many fields want it) and each rule a record names (one GET per distinct rule)."""

from __future__ import annotations

import uuid

from strawberry.dataloader import DataLoader

from gateway.clients.distribution import AssignmentRecord, AssignmentRuleRecord, AssignmentRulesClient
from gateway.loaders.one_by_one import create_one_by_one_loader

AssignmentsLoader = DataLoader[uuid.UUID, list[AssignmentRecord] | None]
AssignmentRuleLoader = DataLoader[uuid.UUID, AssignmentRuleRecord | None]


def create_assignments_loader(client: AssignmentRulesClient) -> AssignmentsLoader:
    async def assignments(lead_id: uuid.UUID) -> list[AssignmentRecord]:
        return (await client.assignments(lead_id)).items

    return create_one_by_one_loader(assignments)
