"""HTTP: /v1/scoring-model — the workspace's scoring rules and thresholds — and /v1/leads/{id}/score, a lead's
score with the breakdown that explains it, computed on read (services.leads.scoring)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from services.common.auth import CurrentPrincipal, Role
from services.common.db import DB, ReadConn
from services.common.etags import IfMatchHeader, etag, expected_version
from services.common.problems import Forbidden, InvalidField, InvalidFields, NotFound, PreconditionFailed
from services.common.responses import model_response
from services.common.text import NoNul
from services.leads import qualification, scoring, scoring_models
from services.leads.normalize import lead_country
from services.leads.repository import LeadRepository
from services.leads.schemas import QualificationOut

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


class ScoringModelOut(BaseModel):
    fit_rules: list[dict[str, Any]]
    engagement_rules: list[dict[str, Any]]
    half_life_days: float
    grades: dict[str, int] = Field(description="The lowest score of grades A, B and C; below c is D")
    temperature: dict[str, int] = Field(description="The lowest score of hot and warm; below warm is cold")
    version: int = Field(description="0: the default model, nothing saved yet")


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


class ScoreOut(BaseModel):
    lead_id: uuid.UUID
    score: int = Field(description="0-100: fit points plus decayed engagement points, clamped")
    grade: str
    temperature: str
    fit: list[FitLineOut]
    engagement: list[EngagementLineOut]
    model_version: int
    computed_at: datetime


def _out(model: scoring.Model) -> Response:
    body = ScoringModelOut.model_validate(scoring_models.as_json(model))
    return model_response(body, headers={"ETag": etag(model.version)})


@router.get("", response_model=ScoringModelOut)
async def get_model(principal: CurrentPrincipal, conn: ReadConn) -> Response:
    """The workspace's scoring model; the default one (version 0) until someone saves a change."""
    return _out(await scoring_models.load(conn, principal.workspace_id))


@router.patch("", response_model=ScoringModelOut)
async def patch_model(
    body: ScoringModelPatch, principal: CurrentPrincipal, db: DB, if_match: IfMatchHeader = None
) -> Response:
    """Replaces the parts sent (a list of rules replaces the whole list). With If-Match, only if nobody changed
    the model since (412 otherwise)."""
    if principal.role not in (Role.admin, Role.head_of_sales):
        raise Forbidden("Only an admin or a head of sales changes the scoring model.")
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
    if saved is None:
        raise PreconditionFailed("The scoring model changed since you read it; read it again and re-apply.")
    return _out(saved)


def facts(lead: asyncpg.Record, answers: QualificationOut) -> scoring.Facts:
    budget: tuple[Decimal, str] | None = None
    if answers.budget is not None:
        budget = (answers.budget.amount, answers.budget.currency)
    return scoring.Facts(
        company=lead["company"], position=lead["position"], channel=lead["channel"], source=lead["source"],
        country=lead_country(lead), tags=tuple(lead["tags"]), budget=budget,
        budget_confirmed=answers.budget_confirmed, custom=lead["custom"] or {},
    )


@lead_router.get("/{lead_id}/score", response_model=ScoreOut)
async def get_score(lead_id: uuid.UUID, principal: CurrentPrincipal, conn: ReadConn) -> ScoreOut:
    """The lead's score by the workspace's model, computed now, with every rule that added or removed points."""
    repository = LeadRepository(conn, principal)
    lead = await repository.get(lead_id)
    if lead is None:
        raise NotFound(f"There is no lead {lead_id}.")
    answers = await qualification.load(conn, principal.workspace_id, lead_id)
    model = await scoring_models.load(conn, principal.workspace_id)
    touches = [
        scoring.Touch(scoring.EVENT_FOR_VIA[t["via"]], t["touched_at"])
        for t in await repository.touches(lead_id) if t["via"] in scoring.EVENT_FOR_VIA
    ]
    now = datetime.now(UTC)
    result = scoring.compute(facts(lead, answers), touches, model, now)
    return ScoreOut(
        lead_id=lead_id, score=result.score, grade=result.grade, temperature=result.temperature,
        fit=[FitLineOut(label=f.label, attribute=f.attribute, points=f.points) for f in result.fit],
        engagement=[
            EngagementLineOut(label=e.label, event=e.event, at=e.at, points=e.points,
                              decayed_points=round(e.decayed_points, 2))
            for e in result.engagement
        ],
        model_version=result.model_version, computed_at=now,
    )
