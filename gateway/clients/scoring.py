"""Client for the leads service's rule scoring: the workspace's scoring model (`/v1/scoring-model`) and a lead's
score with its breakdown (`/v1/leads/{id}/score`), computed by the service when read."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gateway.clients.base import QueryValue, Record, ServiceClient, idempotency, if_match


class FitRuleRecord(Record):
    label: str
    attribute: str
    op: str
    # Its shape depends on the attribute and op: null, a text, a list of texts, a number, true/false or money.
    value: Any = None
    points: int


class EngagementRuleRecord(Record):
    label: str
    event: str
    points: int


class GradesRecord(Record):
    a: int
    b: int
    c: int


class TemperatureRecord(Record):
    hot: int
    warm: int


class RescoreJobRecord(Record):
    """A background rescoring of the workspace's leads and its progress."""

    id: uuid.UUID
    reason: str
    state: str
    model_version: int
    total: int
    done: int
    changed: int
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    created_by: uuid.UUID | None = None


class RescoreJobPage(Record):
    items: list[RescoreJobRecord]
    next_cursor: str | None = None


class ScoringModelRecord(Record):
    """The workspace's model as the leads service returns it (`ScoringModelOut`); version 0 is the default."""

    fit_rules: list[FitRuleRecord]
    engagement_rules: list[EngagementRuleRecord]
    half_life_days: float
    grades: GradesRecord
    temperature: TemperatureRecord
    version: int
    rescore: RescoreJobRecord | None = None


class FitLineRecord(Record):
    label: str
    attribute: str
    points: int


class EngagementLineRecord(Record):
    label: str
    event: str
    at: datetime
    points: int
    decayed_points: float


class StoredScoreRecord(Record):
    score: int
    grade: str
    temperature: str
    model_version: int
    computed_at: datetime


class FactorRecord(Record):
    feature: str
    label: str
    contribution: float


class ConversionRecord(Record):
    probability: float
    model_id: uuid.UUID
    factors: list[FactorRecord] = []


class ScoreRecord(Record):
    """A lead's score as the leads service returns it (`ScoreOut`)."""

    lead_id: uuid.UUID
    score: int
    grade: str
    temperature: str
    fit: list[FitLineRecord]
    engagement: list[EngagementLineRecord]
    model_version: int
    computed_at: datetime
    stored: StoredScoreRecord | None = None
    conversion: ConversionRecord | None = None


class ScoringClient(ServiceClient):
    service = "leads"

    async def model(self) -> ScoringModelRecord:
        response = await self._send("GET", "/v1/scoring-model", ok=(200,))
        return ScoringModelRecord.model_validate_json(response.content)

    async def update_model(self, changes: Mapping[str, Any], *, version: int | None) -> ScoringModelRecord:
        """PATCH: only the parts given change (a list of rules replaces the whole list)."""
        response = await self._send(
            "PATCH", "/v1/scoring-model", ok=(200,), json=dict(changes), headers=if_match(version)
        )
        return ScoringModelRecord.model_validate_json(response.content)

    async def rescores(self, limit: int, cursor: str | None) -> RescoreJobPage:
        params: dict[str, QueryValue] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        response = await self._send("GET", "/v1/scoring-model/rescores", ok=(200,), params=params)
        return RescoreJobPage.model_validate_json(response.content)

    async def rescore(self, job_id: uuid.UUID) -> RescoreJobRecord:
        response = await self._send("GET", f"/v1/scoring-model/rescores/{job_id}", ok=(200,))
        return RescoreJobRecord.model_validate_json(response.content)

    async def start_rescore(self, *, idempotency_key: str | None) -> RescoreJobRecord:
        response = await self._send(
            "POST", "/v1/scoring-model/rescores", ok=(202,), headers=idempotency(idempotency_key)
        )
        return RescoreJobRecord.model_validate_json(response.content)

    async def score(self, lead_id: uuid.UUID) -> ScoreRecord:
        response = await self._send("GET", f"/v1/leads/{lead_id}/score", ok=(200,))
        return ScoreRecord.model_validate_json(response.content)
