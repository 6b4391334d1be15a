"""Rule scoring in GraphQL: a lead's score, grade and temperature with the breakdown that explains it
(`Lead.score`), the workspace's `scoringModel`, and `updateScoringModel` to change its rules and thresholds.

The rules are the leads service's (`/v1/scoring-model`, `/v1/leads/{id}/score`): scores are computed there when
read; the gateway passes the model the client sent and turns the service's refusals into `userErrors`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
from strawberry.scalars import JSON

from gateway.clients.base import UpstreamRejected
from gateway.clients.scoring import (
    EngagementRuleRecord,
    FitRuleRecord,
    RescoreJobRecord,
    ScoreRecord,
    ScoringModelRecord,
)
from gateway.context import Info
from gateway.pagination import MAX_FIRST, window
from gateway.types.common import PageInfo, UserError, parse_uuid, refuse_query, sent, user_errors

DEFAULT_FIRST = 20


@strawberry.enum(description="A lead's grade by the model's `grades`: A is the best fit and engagement, D the least.")
class ScoreGrade(Enum):
    A = "A"
    B = "B"
    C = "C"
    D = "D"


@strawberry.enum(description="How much a lead has engaged lately, by the model's `temperature` thresholds.")
class ScoreTemperature(Enum):
    HOT = "hot"
    WARM = "warm"
    COLD = "cold"


@strawberry.enum(description="How a fit rule compares the lead's attribute with its `value`.")
class FitRuleOp(Enum):
    EXISTS = "exists"
    EQUALS = "equals"
    IN = "in"
    CONTAINS = "contains"
    GTE = "gte"
    LTE = "lte"


@strawberry.enum(description="What a lead did that an engagement rule gives points for.")
class EngagementEvent(Enum):
    FORM_SUBMITTED = "form_submitted"
    API_SUBMITTED = "api_submitted"
    IMPORTED = "imported"


# ---- a lead's score ---------------------------------------------------------------------------------------


@strawberry.type(description="A fit rule that applied to the lead, and the points it gave (negative: took away).")
class FitPoints:
    label: str
    attribute: str
    points: int


@strawberry.type(description="One touch of the lead counted by an engagement rule, before and after decay.")
class EngagementPoints:
    label: str
    event: EngagementEvent
    at: datetime = strawberry.field(description="When the lead touched us.")
    points: int = strawberry.field(description="The rule's points.")
    decayed_points: float = strawberry.field(description="What they count now, halved every half-life (2 places).")


@strawberry.type(description="The score as last stored: what grade filters and assignment rules read.")
class StoredScore:
    score: int
    grade: ScoreGrade
    temperature: ScoreTemperature
    model_version: int
    computed_at: datetime = strawberry.field(description="When it was stored; engagement has decayed since.")


@strawberry.type(description="A feature of the lead and its share of the log-odds (positive raises the probability).")
class ConversionFactor:
    feature: str = strawberry.field(description='e.g. "channel=referral".')
    label: str = strawberry.field(description="The feature in words.")
    contribution: float


@strawberry.type(description="The learned probability that the lead becomes a won deal, and why.")
class ConversionProbability:
    probability: float = strawberry.field(description="0 to 1.")
    model_id: uuid.UUID = strawberry.field(description="The `conversionModel` that gave it.")
    factors: list[ConversionFactor] = strawberry.field(description="The features that weigh most for this lead.")


@strawberry.type(description="A lead's score by the workspace's scoring model, computed when read.")
class LeadScore:
    score: int = strawberry.field(description="0-100: fit points plus decayed engagement points, clamped.")
    grade: ScoreGrade
    temperature: ScoreTemperature
    fit: list[FitPoints] = strawberry.field(description="The fit rules that applied, in the model's order.")
    engagement: list[EngagementPoints] = strawberry.field(description="One line per touch and rule that counted.")
    model_version: int = strawberry.field(description="The `version` of the model used; 0: the default.")
    computed_at: datetime
    stored: StoredScore | None = strawberry.field(
        description="The score as stored (for filters and rules); null until the lead is first scored."
    )
    conversion: ConversionProbability | None = strawberry.field(
        description="The learned probability of conversion; null while the workspace has no usable model."
    )

    @classmethod
    def from_record(cls, record: ScoreRecord) -> LeadScore:
        stored, conversion = record.stored, record.conversion
        return cls(
            score=record.score,
            grade=ScoreGrade(record.grade),
            temperature=ScoreTemperature(record.temperature),
            fit=[FitPoints(label=f.label, attribute=f.attribute, points=f.points) for f in record.fit],
            engagement=[
                EngagementPoints(
                    label=e.label,
                    event=EngagementEvent(e.event),
                    at=e.at,
                    points=e.points,
                    decayed_points=e.decayed_points,
                )
                for e in record.engagement
            ],
            model_version=record.model_version,
            computed_at=record.computed_at,
            stored=(
                StoredScore(
                    score=stored.score, grade=ScoreGrade(stored.grade),
                    temperature=ScoreTemperature(stored.temperature), model_version=stored.model_version,
                    computed_at=stored.computed_at,
                )
                if stored is not None
                else None
            ),
            conversion=(
                ConversionProbability(
                    probability=conversion.probability, model_id=conversion.model_id,
                    factors=[
                        ConversionFactor(feature=f.feature, label=f.label, contribution=f.contribution)
                        for f in conversion.factors
                    ],
                )
                if conversion is not None
                else None
            ),
        )


# ---- rescoring --------------------------------------------------------------------------------------------


@strawberry.enum(description="Why the workspace's leads are being scored again.")
class RescoreReason(Enum):
    MODEL_CHANGED = "model_changed"
    CONVERSION_MODEL_TRAINED = "conversion_model_trained"
    NIGHTLY = "nightly"
    REQUESTED = "requested"


@strawberry.enum(description="RUNNING, DONE, SUPERSEDED (a newer rescoring took over) or FAILED.")
class RescoreState(Enum):
    RUNNING = "running"
    DONE = "done"
    SUPERSEDED = "superseded"
    FAILED = "failed"


@strawberry.type(description="A background rescoring of every lead of the workspace, with its progress.")
class RescoreJob:
    id: uuid.UUID
    reason: RescoreReason
    state: RescoreState
    model_version: int = strawberry.field(description="The scoring model's version it scores by.")
    total: int = strawberry.field(description="Leads to score, counted when it started.")
    done: int
    changed: int = strawberry.field(description="Leads whose grade moved (each announced with lead.scored).")
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    created_by: uuid.UUID | None = strawberry.field(description="Who started it; null: a model change or the clock.")

    @classmethod
    def from_record(cls, record: RescoreJobRecord) -> RescoreJob:
        return cls(
            id=record.id, reason=RescoreReason(record.reason), state=RescoreState(record.state),
            model_version=record.model_version, total=record.total, done=record.done, changed=record.changed,
            created_at=record.created_at, updated_at=record.updated_at, finished_at=record.finished_at,
            created_by=record.created_by,
        )


@strawberry.type
class RescoreJobEdge:
    cursor: str
    node: RescoreJob


@strawberry.type
class RescoreJobConnection:
    edges: list[RescoreJobEdge]
    page_info: PageInfo


# ---- the model --------------------------------------------------------------------------------------------

ATTRIBUTE_HELP = "company, position, channel, source, country, tags, budget, budget_confirmed, or custom.<key>."
VALUE_HELP = (
    'Depends on attribute and op: null for EXISTS; a text; a list of texts for IN; a number for a custom field\'s '
    'GTE/LTE; {amount: "10000", currency: "EUR"} for budget; true or false for budget_confirmed.'
)


@strawberry.type(description="Points for what the lead is.")
class FitRule:
    label: str
    attribute: str = strawberry.field(description=ATTRIBUTE_HELP)
    op: FitRuleOp
    value: JSON | None = strawberry.field(description=VALUE_HELP)
    points: int = strawberry.field(description="-100 to 100.")

    @classmethod
    def from_record(cls, record: FitRuleRecord) -> FitRule:
        return cls(
            label=record.label,
            attribute=record.attribute,
            op=FitRuleOp(record.op),
            value=JSON(record.value) if record.value is not None else None,
            points=record.points,
        )


@strawberry.type(description="Points for each of the lead's touches of an event; they decay with the touch's age.")
class EngagementRule:
    label: str
    event: EngagementEvent
    points: int = strawberry.field(description="-100 to 100.")

    @classmethod
    def from_record(cls, record: EngagementRuleRecord) -> EngagementRule:
        return cls(label=record.label, event=EngagementEvent(record.event), points=record.points)


@strawberry.type(description="The lowest score of grades A, B and C; below c is D.")
class GradeThresholds:
    a: int
    b: int
    c: int


@strawberry.type(description="The lowest score of HOT and WARM; below warm is COLD.")
class TemperatureThresholds:
    hot: int
    warm: int


@strawberry.type(description="The workspace's scoring rules and thresholds; the default model until one is saved.")
class ScoringModel:
    fit_rules: list[FitRule]
    engagement_rules: list[EngagementRule]
    half_life_days: float = strawberry.field(description="After this many days an engagement counts half.")
    grades: GradeThresholds
    temperature: TemperatureThresholds
    version: int = strawberry.field(
        description="0: the default model, nothing saved yet. Pass it back as `version` to `updateScoringModel`."
    )
    rescore: RescoreJob | None = strawberry.field(
        description="The latest rescoring of the workspace's leads (a change to the model starts one); null: none yet."
    )

    @classmethod
    def from_record(cls, record: ScoringModelRecord) -> ScoringModel:
        return cls(
            fit_rules=[FitRule.from_record(rule) for rule in record.fit_rules],
            engagement_rules=[EngagementRule.from_record(rule) for rule in record.engagement_rules],
            half_life_days=record.half_life_days,
            grades=GradeThresholds(a=record.grades.a, b=record.grades.b, c=record.grades.c),
            temperature=TemperatureThresholds(hot=record.temperature.hot, warm=record.temperature.warm),
            version=record.version,
            rescore=RescoreJob.from_record(record.rescore) if record.rescore is not None else None,
        )


# ---- inputs and payloads ----------------------------------------------------------------------------------


@strawberry.input
class FitRuleInput:
    label: str = strawberry.field(description="1 to 200 characters.")
    attribute: str = strawberry.field(description=ATTRIBUTE_HELP)
    op: FitRuleOp
    value: JSON | None = strawberry.field(default=None, description=VALUE_HELP)
    points: int = strawberry.field(description="-100 to 100.")

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "attribute": self.attribute,
            "op": self.op.value,
            "value": self.value,
            "points": self.points,
        }


@strawberry.input
class EngagementRuleInput:
    label: str = strawberry.field(description="1 to 200 characters.")
    event: EngagementEvent
    points: int = strawberry.field(description="-100 to 100.")

    def as_json(self) -> dict[str, Any]:
        return {"label": self.label, "event": self.event.value, "points": self.points}


@strawberry.input(description="Whole numbers from 0 to 100 with a > b > c.")
class GradeThresholdsInput:
    a: int
    b: int
    c: int


@strawberry.input(description="Whole numbers from 0 to 100 with hot > warm.")
class TemperatureThresholdsInput:
    hot: int
    warm: int


@strawberry.input(
    description="Only the parts given change; a list of rules replaces the whole list. Admins and heads of sales."
)
class UpdateScoringModelInput:
    fit_rules: list[FitRuleInput] | None = strawberry.field(
        default=strawberry.UNSET, description="Replaces the fit rules: up to 100."
    )
    engagement_rules: list[EngagementRuleInput] | None = strawberry.field(
        default=strawberry.UNSET, description="Replaces the engagement rules: up to 100."
    )
    half_life_days: float | None = strawberry.field(default=strawberry.UNSET, description="More than 0, up to 3,650.")
    grades: GradeThresholdsInput | None = strawberry.UNSET
    temperature: TemperatureThresholdsInput | None = strawberry.UNSET
    version: int | None = strawberry.field(
        default=None,
        description="The model's `version` you read (0 for the default): the change applies only if nobody changed "
        "it since (else STALE_VERSION).",
    )


@strawberry.type
class UpdateScoringModelPayload:
    scoring_model: ScoringModel | None = strawberry.field(description="The model saved; null on userErrors.")
    user_errors: list[UserError]


def _changes(input: UpdateScoringModelInput) -> dict[str, Any]:
    """The parts the client gave, as the service takes them; null included (the service refuses it by name)."""
    fit_rules, engagement_rules = input.fit_rules, input.engagement_rules
    grades, temperature = input.grades, input.temperature
    return sent(
        {
            "fit_rules": [r.as_json() for r in fit_rules] if isinstance(fit_rules, list) else fit_rules,
            "engagement_rules": (
                [r.as_json() for r in engagement_rules] if isinstance(engagement_rules, list) else engagement_rules
            ),
            "half_life_days": input.half_life_days,
            "grades": (
                {"a": grades.a, "b": grades.b, "c": grades.c} if isinstance(grades, GradeThresholdsInput) else grades
            ),
            "temperature": (
                {"hot": temperature.hot, "warm": temperature.warm}
                if isinstance(temperature, TemperatureThresholdsInput)
                else temperature
            ),
        }
    )


@strawberry.input
class StartRescoreInput:
    idempotency_key: str | None = strawberry.field(default=None, description="Makes a retry safe.")


@strawberry.type
class StartRescorePayload:
    rescore: RescoreJob | None = strawberry.field(description="The rescoring started; null on userErrors.")
    user_errors: list[UserError]


# ---- resolvers --------------------------------------------------------------------------------------------


async def resolve_scoring_model(info: Info) -> ScoringModel:
    return ScoringModel.from_record(await info.context.clients.scoring.model())


async def update_scoring_model(info: Info, input: UpdateScoringModelInput) -> UpdateScoringModelPayload:
    try:
        record = await info.context.clients.scoring.update_model(_changes(input), version=input.version)
    except UpstreamRejected as rejected:
        return UpdateScoringModelPayload(scoring_model=None, user_errors=user_errors("input", rejected))
    return UpdateScoringModelPayload(scoring_model=ScoringModel.from_record(record), user_errors=[])


async def resolve_rescore_jobs(
    info: Info, first: int | None = DEFAULT_FIRST, after: str | None = None
) -> RescoreJobConnection:
    client = info.context.clients.scoring

    async def fetch(limit: int, cursor: str | None) -> tuple[Sequence[RescoreJobRecord], str | None]:
        try:
            page = await client.rescores(limit, cursor)
        except UpstreamRejected as rejected:
            refuse_query(rejected)
        return page.items, page.next_cursor

    result = await window(fetch, first=DEFAULT_FIRST if first is None else first, after=after)
    return RescoreJobConnection(
        edges=[RescoreJobEdge(cursor=cursor, node=RescoreJob.from_record(record)) for cursor, record in result.edges],
        page_info=PageInfo(has_next_page=result.has_next_page, end_cursor=result.end_cursor),
    )


async def resolve_rescore_job(info: Info, id: strawberry.ID) -> RescoreJob | None:
    job_id = parse_uuid(id)
    if job_id is None:
        return None
    try:
        record = await info.context.clients.scoring.rescore(job_id)
    except UpstreamRejected as rejected:
        if rejected.status == 404:
            return None
        refuse_query(rejected)
    return RescoreJob.from_record(record)


async def start_rescore(info: Info, input: StartRescoreInput | None = None) -> StartRescorePayload:
    key = input.idempotency_key if input is not None else None
    try:
        record = await info.context.clients.scoring.start_rescore(idempotency_key=key)
    except UpstreamRejected as rejected:
        return StartRescorePayload(rescore=None, user_errors=user_errors("input", rejected))
    return StartRescorePayload(rescore=RescoreJob.from_record(record), user_errors=[])


@strawberry.type
class ScoringQuery:
    scoring_model: ScoringModel | None = strawberry.field(
        resolver=resolve_scoring_model, description="The workspace's scoring model; everyone may read it."
    )
    rescore_jobs: RescoreJobConnection | None = strawberry.field(
        resolver=resolve_rescore_jobs,
        description=f"The workspace's rescorings, newest first. `first` is at most {MAX_FIRST}.",
    )
    rescore_job: RescoreJob | None = strawberry.field(
        resolver=resolve_rescore_job, description="One rescoring and its progress; null for an unknown id."
    )


@strawberry.type
class ScoringMutation:
    update_scoring_model: UpdateScoringModelPayload = strawberry.mutation(
        resolver=update_scoring_model,
        description="Changes the workspace's scoring rules and thresholds (admins and heads of sales); the "
        "workspace's leads are then scored again in the background (`scoringModel.rescore`).",
    )
    start_rescore: StartRescorePayload = strawberry.mutation(
        resolver=start_rescore,
        description="Scores every lead of the workspace again now, in the background (admins and heads of sales).",
    )
