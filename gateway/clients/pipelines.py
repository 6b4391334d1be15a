"""Client for the deals service's pipelines (`/v1/pipelines`): the workspace's pipelines with their stages, the
check of a pipeline against good practice, and each stage's playbook."""

from __future__ import annotations

import uuid
from datetime import datetime

from gateway.clients.base import QueryValue, Record, ServiceClient


class StageRecord(Record):
    id: uuid.UUID
    position: int
    name: str
    expected_result: str | None = None
    required_actions: list[str] = []
    exit_criteria: list[str] = []
    probability: int
    rotting_days: int | None = None
    phase: str
    is_won: bool
    is_completed: bool


class PipelineRecord(Record):
    """A pipeline as the deals service returns it (`PipelineOut`), its stages in order."""

    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    description: str | None = None
    audience: list[str] = []
    is_default: bool
    position: int
    stages: list[StageRecord]
    created_at: datetime
    updated_at: datetime
    version: int


class PipelinePage(Record):
    items: list[PipelineRecord]
    next_cursor: str | None = None


class FindingRecord(Record):
    code: str
    severity: str
    stage_id: uuid.UUID | None = None
    message: str


class CheckRecord(Record):
    pipeline_id: uuid.UUID
    pipeline_version: int
    findings: list[FindingRecord]


class StepRecord(Record):
    title: str
    task_type: str
    description: str | None = None
    due_in: int
    due_unit: str
    assignee: str
    checkpoint: bool


class PlaybookRecord(Record):
    pipeline_id: uuid.UUID
    stage_id: uuid.UUID
    version: int
    script: str | None = None
    steps: list[StepRecord] = []
    created_at: datetime | None = None
    created_by: uuid.UUID | None = None


class PipelinesClient(ServiceClient):
    service = "deals"

    async def page(self, *, limit: int, cursor: str | None) -> PipelinePage:
        params: dict[str, QueryValue] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        response = await self._send("GET", "/v1/pipelines", ok=(200,), params=params)
        return PipelinePage.model_validate_json(response.content)

    async def get(self, pipeline_id: uuid.UUID) -> PipelineRecord:
        response = await self._send("GET", f"/v1/pipelines/{pipeline_id}", ok=(200,))
        return PipelineRecord.model_validate_json(response.content)

    async def check(self, pipeline_id: uuid.UUID) -> CheckRecord:
        response = await self._send("GET", f"/v1/pipelines/{pipeline_id}/check", ok=(200,))
        return CheckRecord.model_validate_json(response.content)

    async def playbook(self, pipeline_id: uuid.UUID, stage_id: uuid.UUID) -> PlaybookRecord:
        response = await self._send("GET", f"/v1/pipelines/{pipeline_id}/stages/{stage_id}/playbook", ok=(200,))
        return PlaybookRecord.model_validate_json(response.content)
