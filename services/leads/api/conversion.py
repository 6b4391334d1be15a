"""HTTP: /v1/scoring/model — the workspace's learned probability-of-conversion model: its state and quality,
retraining on demand, and the history of trainings (services.leads.conversion_training)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from services.common.auth import CurrentPrincipal, Role
from services.common.cursors import decode_cursor, encode_cursor
from services.common.db import DB, Connection, ReadConn
from services.common.idempotency import IdempotencyKeyHeader, IdempotentRequest, answer_once
from services.common.problems import Forbidden
from services.common.responses import model_response
from services.leads import conversion, conversion_training
from services.leads.models import SCHEMA

router = APIRouter(prefix="/v1/scoring/model", tags=["scoring"])

TOP_FEATURES = 10
_COLUMNS = "id, state, reason, examples, positives, auc, calibration, coefficients, params, trained_by, trained_at"


class CalibrationBucketOut(BaseModel):
    model_config = ConfigDict(validate_by_name=True, serialize_by_alias=True)

    from_: float = Field(alias="from", description="The bucket's lowest probability")
    to: float = Field(description="Up to (not including; the last bucket includes 1.0)")
    predicted: float | None = Field(description="The mean held-out predicted probability; null when empty")
    observed: float | None = Field(description="The share of these leads that were won; null when empty")
    count: int


class FeatureWeightOut(BaseModel):
    feature: str = Field(description='e.g. "channel=referral"')
    label: str
    weight: float = Field(description="In log-odds: positive raises the probability")


class MinimumOut(BaseModel):
    examples: int = Field(description="Leads with a known outcome (won, lost or disqualified) the model needs")
    per_class: int = Field(description="Of those, at least this many won and this many not")


class RetrainRequestOut(BaseModel):
    requested_at: datetime
    due_at: datetime = Field(description="When the trainer takes it: now when asked by hand, else the nightly run")
    requested_by: uuid.UUID | None = Field(description="Null: asked by new history, not a person")


class ConversionModelOut(BaseModel):
    id: uuid.UUID | None = Field(description="Null before the first training")
    state: str = Field(description="untrained | insufficient_history | no_signal | active (used beside the rules)")
    reason: str
    examples: int
    positives: int = Field(description="Of the examples, the leads that were won")
    auc: float | None = Field(description="Cross-validated area under the ROC curve: 0.5 is chance, 1 perfect")
    brier: float | None = Field(description="Cross-validated mean squared error of the probabilities")
    calibration: list[CalibrationBucketOut]
    top_features: list[FeatureWeightOut] = Field(description=f"The {TOP_FEATURES} largest weights, by size")
    trained_at: datetime | None
    trained_by: uuid.UUID | None = Field(description="Who asked for the training; null: the nightly run")
    minimum: MinimumOut
    pending_retrain: RetrainRequestOut | None


class TrainingOut(BaseModel):
    id: uuid.UUID
    state: str
    reason: str
    examples: int
    positives: int
    auc: float | None
    brier: float | None
    trained_at: datetime
    trained_by: uuid.UUID | None


class TrainingPage(BaseModel):
    items: list[TrainingOut]
    next_cursor: str | None


class RetrainIn(BaseModel):
    """No body: what makes two retrain requests the same for Idempotency-Key is only the key."""


MINIMUM = MinimumOut(examples=conversion_training.MIN_EXAMPLES, per_class=conversion_training.MIN_PER_CLASS)


def _top_features(coefficients: dict[str, Any]) -> list[FeatureWeightOut]:
    largest = sorted(coefficients.items(), key=lambda item: abs(item[1]), reverse=True)[:TOP_FEATURES]
    return [FeatureWeightOut(feature=name, label=conversion.label(name), weight=weight) for name, weight in largest]


def _pending(row: asyncpg.Record | None) -> RetrainRequestOut | None:
    if row is None:
        return None
    return RetrainRequestOut(requested_at=row["requested_at"], due_at=row["due_at"], requested_by=row["requested_by"])


@router.get("", response_model=ConversionModelOut)
async def get_model(principal: CurrentPrincipal, conn: ReadConn) -> Response:
    """The newest training of the workspace's model: whether it is used (`active`) and why, how good it is on
    leads it did not see (AUC, Brier score, calibration buckets) and the features that weigh most."""
    ws = principal.workspace_id
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM leads.conversion_models WHERE workspace_id = $1 ORDER BY id DESC LIMIT 1", ws
    )
    pending = _pending(await conn.fetchrow(
        "SELECT requested_at, requested_by, due_at FROM leads.conversion_requests WHERE workspace_id = $1", ws
    ))
    if row is None:
        body = ConversionModelOut(
            id=None, state="untrained",
            reason=(
                "Not trained yet. The model learns from leads with a known outcome (deal won, deal lost, or "
                f"disqualified) once there are at least {MINIMUM.examples}, with at least {MINIMUM.per_class} won "
                "and as many not; until then leads are scored by the rules alone."
            ),
            examples=0, positives=0, auc=None, brier=None, calibration=[], top_features=[], trained_at=None,
            trained_by=None, minimum=MINIMUM, pending_retrain=pending,
        )
    else:
        body = ConversionModelOut(
            id=row["id"], state=row["state"], reason=row["reason"], examples=row["examples"],
            positives=row["positives"], auc=row["auc"], brier=row["params"].get("brier"),
            calibration=[CalibrationBucketOut.model_validate(b) for b in row["calibration"]],
            top_features=_top_features(row["coefficients"]), trained_at=row["trained_at"],
            trained_by=row["trained_by"], minimum=MINIMUM, pending_retrain=pending,
        )
    return model_response(body)


@router.post("/retrain", status_code=status.HTTP_202_ACCEPTED, response_model=RetrainRequestOut)
async def retrain(principal: CurrentPrincipal, db: DB, idempotency_key: IdempotencyKeyHeader = None) -> Response:
    """Asks for the model to be trained again now, on the history as it is (202): follow `GET /v1/scoring/model`
    until `pending_retrain` is null. Asking again while a request is pending changes nothing."""
    if principal.role not in (Role.admin, Role.head_of_sales):
        raise Forbidden("Only an admin or a head of sales retrains the conversion model.")

    async def write(conn: Connection) -> Response:
        row = await conversion.request_training(conn, principal.workspace_id, requested_by=principal.user_id)
        body = _pending(row)
        assert body is not None
        return model_response(body, status.HTTP_202_ACCEPTED, {"Location": router.prefix})

    if idempotency_key is None:
        async with db.transaction() as conn:
            return await write(conn)
    keyed = IdempotentRequest.of(principal, idempotency_key, "POST /v1/scoring/model/retrain", RetrainIn())
    return await answer_once(db, SCHEMA, keyed, write)


@router.get("/history", response_model=TrainingPage)
async def history(
    principal: CurrentPrincipal,
    conn: ReadConn,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor from the previous page")] = None,
) -> TrainingPage:
    """Every training of the workspace's model, newest first, with its state and quality."""
    rows = await conn.fetch(
        """
        SELECT id, state, reason, examples, positives, auc, params->'brier' AS brier, trained_by, trained_at
        FROM leads.conversion_models
        WHERE workspace_id = $1 AND ($2::uuid IS NULL OR id < $2)
        ORDER BY id DESC LIMIT $3
        """,
        principal.workspace_id, decode_cursor(cursor) if cursor else None, limit + 1,
    )
    items = [TrainingOut.model_validate(dict(r)) for r in rows[:limit]]
    return TrainingPage(items=items, next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None)
