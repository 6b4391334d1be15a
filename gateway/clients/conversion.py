"""Client for the leads service's learned conversion model (`/v1/scoring/model`): its quality, the features
that weigh most, retraining on demand and the history of trainings."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from gateway.clients.base import Record, ServiceClient, idempotency


class CalibrationBucketRecord(Record):
    low: float = Field(alias="from")
    high: float = Field(alias="to")
    predicted: float | None = None
    observed: float | None = None
    count: int


class FeatureWeightRecord(Record):
    feature: str
    label: str
    weight: float


class MinimumRecord(Record):
    examples: int
    per_class: int


class RetrainRequestRecord(Record):
    requested_at: datetime
    due_at: datetime
    requested_by: uuid.UUID | None = None


class ConversionModelRecord(Record):
    """The current model as the leads service returns it; `state` "untrained" before the first training."""

    id: uuid.UUID | None = None
    state: str
    reason: str
    examples: int = 0
    positives: int = 0
    auc: float | None = None
    brier: float | None = None
    calibration: list[CalibrationBucketRecord] = []
    top_features: list[FeatureWeightRecord] = []
    trained_at: datetime | None = None
    trained_by: uuid.UUID | None = None
    minimum: MinimumRecord
    pending_retrain: RetrainRequestRecord | None = None


class ConversionClient(ServiceClient):
    service = "leads"

    async def model(self) -> ConversionModelRecord:
        response = await self._send("GET", "/v1/scoring/model", ok=(200,))
        return ConversionModelRecord.model_validate_json(response.content)

    async def retrain(self, *, idempotency_key: str | None) -> RetrainRequestRecord:
        response = await self._send(
            "POST", "/v1/scoring/model/retrain", ok=(202,), headers=idempotency(idempotency_key)
        )
        return RetrainRequestRecord.model_validate_json(response.content)
