"""The learned conversion model in GraphQL: `conversionModel` (its state, quality and the features that weigh
most) and `retrainConversionModel`. The model is the leads service's (`/v1/scoring/model`); a lead's probability
is on `Lead.score.conversion` (gateway.types.scoring)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum

import strawberry

from gateway.clients.base import UpstreamRejected
from gateway.clients.conversion import ConversionModelRecord, RetrainRequestRecord
from gateway.context import Info
from gateway.types.common import UserError, user_errors


@strawberry.enum(description="Whether the workspace's history gave a model worth using beside the rules.")
class ConversionModelState(Enum):
    UNTRAINED = "untrained"
    INSUFFICIENT_HISTORY = "insufficient_history"
    NO_SIGNAL = "no_signal"
    ACTIVE = "active"


@strawberry.type(description="Held-out leads whose predicted probability fell in [from, to): predicted vs observed.")
class CalibrationBucket:
    low: float = strawberry.field(name="from", description="The bucket's lowest probability.")
    high: float = strawberry.field(name="to", description="Up to (not including, but 1.0 for the last) this.")
    predicted: float | None = strawberry.field(description="The mean predicted probability; null when empty.")
    observed: float | None = strawberry.field(description="The share of these leads that were won; null when empty.")
    count: int


@strawberry.type(description="A feature of leads and its weight in the model (log-odds: positive raises the odds).")
class ConversionFeature:
    feature: str = strawberry.field(description='e.g. "channel=referral".')
    label: str = strawberry.field(description="The feature in words.")
    weight: float


@strawberry.type(description="The least history the model trains on; with less, leads are scored by the rules alone.")
class ConversionMinimum:
    examples: int = strawberry.field(description="Leads with a known outcome (won, lost or disqualified).")
    per_class: int = strawberry.field(description="Of those, at least this many won and this many not.")


@strawberry.type(description="A retraining asked for and not yet done.")
class RetrainRequest:
    requested_at: datetime
    due_at: datetime = strawberry.field(description="When the trainer takes it: now when asked by hand.")
    requested_by: uuid.UUID | None

    @classmethod
    def from_record(cls, record: RetrainRequestRecord) -> RetrainRequest:
        return cls(requested_at=record.requested_at, due_at=record.due_at, requested_by=record.requested_by)


@strawberry.type(
    description="The workspace's learned probability-of-conversion model: trained on which leads became won deals."
)
class ConversionModel:
    id: uuid.UUID | None = strawberry.field(description="Null before the first training.")
    state: ConversionModelState
    reason: str = strawberry.field(description="The state in words: why it is (not) used.")
    examples: int
    positives: int = strawberry.field(description="Of the examples, the leads that were won.")
    auc: float | None = strawberry.field(description="Cross-validated area under the ROC curve: 0.5 is chance.")
    brier: float | None = strawberry.field(description="Cross-validated mean squared error of the probabilities.")
    calibration: list[CalibrationBucket]
    top_features: list[ConversionFeature] = strawberry.field(description="The largest weights, by size.")
    trained_at: datetime | None
    trained_by: uuid.UUID | None = strawberry.field(description="Who asked; null: the nightly run.")
    minimum: ConversionMinimum
    pending_retrain: RetrainRequest | None

    @classmethod
    def from_record(cls, record: ConversionModelRecord) -> ConversionModel:
        return cls(
            id=record.id,
            state=ConversionModelState(record.state),
            reason=record.reason,
            examples=record.examples,
            positives=record.positives,
            auc=record.auc,
            brier=record.brier,
            calibration=[
                CalibrationBucket(low=b.low, high=b.high, predicted=b.predicted, observed=b.observed, count=b.count)
                for b in record.calibration
            ],
            top_features=[
                ConversionFeature(feature=f.feature, label=f.label, weight=f.weight) for f in record.top_features
            ],
            trained_at=record.trained_at,
            trained_by=record.trained_by,
            minimum=ConversionMinimum(examples=record.minimum.examples, per_class=record.minimum.per_class),
            pending_retrain=(
                RetrainRequest.from_record(record.pending_retrain) if record.pending_retrain is not None else None
            ),
        )


@strawberry.input
class RetrainConversionModelInput:
    idempotency_key: str | None = strawberry.field(default=None, description="Makes a retry safe.")


@strawberry.type
class RetrainConversionModelPayload:
    pending_retrain: RetrainRequest | None = strawberry.field(description="The request queued; null on userErrors.")
    user_errors: list[UserError]


async def resolve_conversion_model(info: Info) -> ConversionModel:
    return ConversionModel.from_record(await info.context.clients.conversion.model())


async def retrain_conversion_model(
    info: Info, input: RetrainConversionModelInput | None = None
) -> RetrainConversionModelPayload:
    key = input.idempotency_key if input is not None else None
    try:
        record = await info.context.clients.conversion.retrain(idempotency_key=key)
    except UpstreamRejected as rejected:
        return RetrainConversionModelPayload(pending_retrain=None, user_errors=user_errors("input", rejected))
    return RetrainConversionModelPayload(pending_retrain=RetrainRequest.from_record(record), user_errors=[])


@strawberry.type
class ConversionQuery:
    conversion_model: ConversionModel | None = strawberry.field(
        resolver=resolve_conversion_model,
        description="The learned probability-of-conversion model: its state and quality; everyone may read it.",
    )


@strawberry.type
class ConversionMutation:
    retrain_conversion_model: RetrainConversionModelPayload = strawberry.mutation(
        resolver=retrain_conversion_model,
        description="Trains the conversion model again now rather than at the nightly run (admins, heads of sales).",
    )
