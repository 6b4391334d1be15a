"""HTTP: /v1/scoring-model — the workspace's scoring rules and thresholds, and the background rescorings a change
starts (/v1/scoring-model/rescores) — and /v1/leads/{id}/score, a lead's score with the breakdown that explains it,
computed on read (services.leads.scoring), beside the score stored for it and the learned probability."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from services.common.auth import CurrentPrincipal, Principal, Role
from services.common.cursors import decode_cursor, encode_cursor
from services.common.db import DB, Connection, ReadConn
from services.common.etags import IfMatchHeader, etag, expected_version
from services.common.idempotency import IdempotencyKeyHeader, IdempotentRequest, answer_once
from services.common.problems import Forbidden, InvalidField, InvalidFields, NotFound, PreconditionFailed
from services.common.responses import model_response
from services.common.text import NoNul
from services.leads import conversion, rescoring, score_inputs, scoring, scoring_models
from services.leads.models import SCHEMA
from services.leads.repository import LeadRepository

router = APIRouter(prefix="/v1/scoring-model", tags=["scoring"])
lead_router = APIRouter(prefix="/v1/leads", tags=["scoring"])

Points = Annotated[int, Field(ge=-100, le=100)]
Label = Annotated[str, NoNul, Field(min_length=1, max_length=200)]
Threshold = Annotated[int, Field(ge=0, le=100)]


class FitRuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    label: Label
    attribute: Annotated[str, NoNul] = Field(
        max_length=120, description="company, position, channel, source, tags, country, budget, budget_confirmed, "
        "or custom.<key>",
    )
    op: scoring.Op
    value: Any = Field(default=None, description="Depends on the attribute and op; none for exists")
    points: Points


class EngagementRuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    label: Label
    event: scoring.Event
    points: Points


class GradesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    a: Threshold
    b: Threshold
    c: Threshold


class TemperatureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hot: Threshold
    warm: Threshold


class RescoreOut(BaseModel):
    """A background rescoring of every lead of the workspace, and how far it got."""

    id: uuid.UUID
    reason: rescoring.Reason
    state: str = Field(description="running, done, or superseded (a newer rescoring replaced it)")
    model_version: int = Field(description="The scoring model's version when it started")
    total: int = Field(description="Leads to rescore (grows with leads taken in while it runs)")
    done: int
    changed: int = Field(description="Leads whose grade moved (or that got their first): one lead.scored each")
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    created_by: uuid.UUID | None = Field(description="Null when the service started it (nightly)")


class RescorePage(BaseModel):
    items: list[RescoreOut]
    next_cursor: str | None


class ScoringModelOut(BaseModel):
    fit_rules: list[dict[str, Any]]
    engagement_rules: list[dict[str, Any]]
    half_life_days: float
    grades: dict[str, int] = Field(description="The lowest score of grades A, B and C; below c is D")
    temperature: dict[str, int] = Field(description="The lowest score of hot and warm; below warm is cold")
    version: int = Field(description="0: the default model, nothing saved yet")
    rescore: RescoreOut | None = Field(description="The workspace's latest rescoring; null before the first")


class ScoringModelPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fit_rules: list[FitRuleIn] | None = Field(default=None, max_length=100)
    engagement_rules: list[EngagementRuleIn] | None = Field(default=None, max_length=100)
    half_life_days: float | None = Field(default=None, gt=0, le=3650)
    grades: GradesIn | None = None
    temperature: TemperatureIn | None = None


class FitLineOut(BaseModel):
    label: str
    attribute: str
    points: int


class EngagementLineOut(BaseModel):
    label: str
    event: str
    at: datetime
    points: int
    decayed_points: float


class StoredScoreOut(BaseModel):
    score: int
    grade: str
    temperature: str
    computed_at: datetime = Field(description="When the stored values last changed")
    model_version: int


class FactorOut(BaseModel):
    feature: str
    label: str
    contribution: float = Field(description="Its share of the log-odds: positive raises the probability")


class ConversionOut(BaseModel):
    probability: float = Field(ge=0, le=1)
    model_id: uuid.UUID
    factors: list[FactorOut] = Field(description="The features that moved the probability most, either way")


class ScoreOut(BaseModel):
    lead_id: uuid.UUID
    score: int = Field(description="0-100: fit points plus decayed engagement points, clamped")
    grade: str
    temperature: str
    fit: list[FitLineOut]
    engagement: list[EngagementLineOut]
    model_version: int
    computed_at: datetime
    stored: StoredScoreOut | None = Field(
        description="The score kept for filtering and events (rescored in the background); null until the first"
    )
    conversion: ConversionOut | None = Field(description="The learned probability; null without a usable model")


def _rescore(row: asyncpg.Record | None) -> RescoreOut | None:
    return RescoreOut.model_validate(dict(row)) if row is not None else None


def _out(model: scoring.Model, job: asyncpg.Record | None) -> Response:
    body = ScoringModelOut.model_validate(scoring_models.as_json(model) | {"rescore": _rescore(job)})
    return model_response(body, headers={"ETag": etag(model.version)})


def _check_may_change(principal: Principal, what: str) -> None:
    if principal.role not in (Role.admin, Role.head_of_sales):
        raise Forbidden(f"Only an admin or a head of sales {what}.")


@router.get("", response_model=ScoringModelOut)
async def get_model(principal: CurrentPrincipal, conn: ReadConn) -> Response:
    """The workspace's scoring model; the default one (version 0) until someone saves a change. `rescore` is the
    latest background rescoring of the workspace's stored scores."""
    model = await scoring_models.load(conn, principal.workspace_id)
    return _out(model, await rescoring.latest(conn, principal.workspace_id))


@router.patch("", response_model=ScoringModelOut)
async def patch_model(
    body: ScoringModelPatch, principal: CurrentPrincipal, db: DB, if_match: IfMatchHeader = None
) -> Response:
    """Replaces the parts sent (a list of rules replaces the whole list). With If-Match, only if nobody changed
    the model since (412 otherwise). Starts rescoring the workspace's stored scores in the background (`rescore`
    in the answer; a rescoring still running is superseded)."""
    _check_may_change(principal, "changes the scoring model")
    changes = body.model_dump(exclude_unset=True, mode="json")
    for name, value in changes.items():
        if value is None:
            raise InvalidField(name, f"Send {name}; null does not clear it.", code="null")
    errors: list[dict[str, str]] = []
    if "fit_rules" in changes:
        checked = [scoring_models.check_fit_rule(i, rule) for i, rule in enumerate(changes["fit_rules"])]
        changes["fit_rules"] = [rule for rule, _ in checked]
        errors += [error for _, rule_errors in checked for error in rule_errors]
    if (grades := changes.get("grades")) is not None and not grades["a"] > grades["b"] > grades["c"]:
        errors.append({"field": "grades", "code": "order", "message": "Grades need a > b > c >= 0."})
    if (temperature := changes.get("temperature")) is not None and not temperature["hot"] > temperature["warm"]:
        errors.append({"field": "temperature", "code": "order", "message": "Temperature needs hot > warm."})
    if errors:
        raise InvalidFields(errors)
    async with db.transaction() as conn:
        saved = await scoring_models.save(
            conn, principal.workspace_id, principal.user_id, changes, expected_version(if_match)
        )
        job = None
        if saved is not None:
            # Committed with the model: no saved model without the rescoring that brings stored scores to it.
            job_id = await rescoring.start(
                conn, principal.workspace_id, reason="model_changed", model_version=saved.version,
                created_by=principal.user_id,
            )
            job = await rescoring.get(conn, principal.workspace_id, job_id)
    if saved is None:
        raise PreconditionFailed("The scoring model changed since you read it; read it again and re-apply.")
    return _out(saved, job)


@router.get("/rescores", response_model=RescorePage)
async def list_rescores(
    principal: CurrentPrincipal,
    conn: ReadConn,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor from the previous page")] = None,
) -> RescorePage:
    """The workspace's rescorings, newest first, each with its progress."""
    rows = await rescoring.page(
        conn, principal.workspace_id, limit + 1, decode_cursor(cursor) if cursor else None
    )
    items = [RescoreOut.model_validate(dict(r)) for r in rows[:limit]]
    return RescorePage(items=items, next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None)


@router.get("/rescores/{job_id}", response_model=RescoreOut)
async def get_rescore(job_id: uuid.UUID, principal: CurrentPrincipal, conn: ReadConn) -> RescoreOut:
    """A rescoring's progress: `done` of `total` leads, `changed` of them moved grade."""
    row = await rescoring.get(conn, principal.workspace_id, job_id)
    if row is None:
        raise NotFound(f"There is no rescoring {job_id}.")
    return RescoreOut.model_validate(dict(row))


class _NoBody(BaseModel):
    """POST /rescores takes no body; an idempotency key is fingerprinted with this empty one."""


@router.post("/rescores", status_code=status.HTTP_202_ACCEPTED, response_model=RescoreOut)
async def start_rescore(
    principal: CurrentPrincipal, db: DB, idempotency_key: IdempotencyKeyHeader = None
) -> Response:
    """Rescores every lead of the workspace in the background now (202: follow the Location), e.g. to let decayed
    engagement reach the stored scores before the nightly rescoring. A rescoring still running is superseded."""
    _check_may_change(principal, "starts a rescoring")

    async def write(conn: Connection) -> Response:
        model = await scoring_models.load(conn, principal.workspace_id)
        job_id = await rescoring.start(
            conn, principal.workspace_id, reason="requested", model_version=model.version,
            created_by=principal.user_id,
        )
        job = _rescore(await rescoring.get(conn, principal.workspace_id, job_id))
        assert job is not None
        return model_response(job, status.HTTP_202_ACCEPTED, {"Location": f"/v1/scoring-model/rescores/{job_id}"})

    if idempotency_key is None:
        async with db.transaction() as conn:
            response = await write(conn)
        return response
    keyed = IdempotentRequest.of(principal, idempotency_key, "POST /v1/scoring-model/rescores", _NoBody())
    return await answer_once(db, SCHEMA, keyed, write)


async def _stored(conn: Connection, workspace_id: uuid.UUID, lead_id: uuid.UUID) -> StoredScoreOut | None:
    row = await conn.fetchrow(
        """
        SELECT score, grade, temperature, computed_at, model_version FROM leads.lead_scores
        WHERE workspace_id = $1 AND lead_id = $2
        """,
        workspace_id, lead_id,
    )
    return StoredScoreOut.model_validate(dict(row)) if row is not None else None


@lead_router.get("/{lead_id}/score", response_model=ScoreOut)
async def get_score(lead_id: uuid.UUID, principal: CurrentPrincipal, conn: ReadConn) -> ScoreOut:
    """The lead's score by the workspace's model, computed now, with every rule that added or removed points;
    `stored` is the score kept for it (what grade filters and lead.scored go by), `conversion` the learned
    probability of conversion with the factors that moved it most."""
    lead = await LeadRepository(conn, principal).get(lead_id)
    if lead is None:
        raise NotFound(f"There is no lead {lead_id}.")
    inputs = (await score_inputs.load(conn, principal.workspace_id, [lead_id])).get(lead_id)
    if inputs is None:
        raise NotFound(
            f"Lead {lead_id} was merged into {lead['merged_into_id']}: its score is that lead's.",
            errors=[{"field": "lead_id", "code": "merged", "message": f"Read {lead['merged_into_id']}'s score."}],
        )
    model = await scoring_models.load(conn, principal.workspace_id)
    predictor = await conversion.load_active(conn, principal.workspace_id)
    now = datetime.now(UTC)
    result = scoring.compute(inputs.facts, inputs.touches, model, now)
    learned = None
    if predictor is not None:
        learned = ConversionOut(
            probability=predictor.probability(inputs, now), model_id=predictor.id,
            factors=[
                FactorOut(feature=f.feature, label=f.label, contribution=f.contribution)
                for f in predictor.explain(inputs, now, top=5)
            ],
        )
    return ScoreOut(
        lead_id=lead_id, score=result.score, grade=result.grade, temperature=result.temperature,
        fit=[FitLineOut(label=f.label, attribute=f.attribute, points=f.points) for f in result.fit],
        engagement=[
            EngagementLineOut(label=e.label, event=e.event, at=e.at, points=e.points,
                              decayed_points=round(e.decayed_points, 2))
            for e in result.engagement
        ],
        model_version=result.model_version, computed_at=now,
        stored=await _stored(conn, principal.workspace_id, lead_id), conversion=learned,
    )
