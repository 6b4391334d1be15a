"""Rule scoring: a lead's score 0-100, grade A-D and temperature from the workspace's scoring model, with the
breakdown that explains it. Pure functions of plain values (no database), so the arithmetic is tested directly.

Fit rules give points for what the lead is; engagement rules give points for what it did (each touch once),
decaying by half: points x 0.5 ** (age_days / half_life_days).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, get_args

Op = Literal["exists", "equals", "in", "contains", "gte", "lte"]
OPS: tuple[str, ...] = get_args(Op)
Event = Literal["form_submitted", "api_submitted", "imported"]
EVENTS: tuple[str, ...] = get_args(Event)
# The attributes a fit rule reads; besides these, `custom.<key>` reads a custom field.
TEXT_ATTRIBUTES = ("company", "position", "channel", "source", "country")
ATTRIBUTES = (*TEXT_ATTRIBUTES, "tags", "budget", "budget_confirmed")
CUSTOM_PREFIX = "custom."
# Which operators each kind of attribute takes (custom fields: text ones, and gte/lte for numbers).
OPS_FOR: dict[str, tuple[str, ...]] = {
    "text": ("exists", "equals", "in", "contains"),
    "custom": ("exists", "equals", "in", "contains", "gte", "lte"),
    "tags": ("exists", "contains", "in"),
    "budget": ("exists", "gte", "lte"),
    "budget_confirmed": ("exists", "equals"),
}
# A touch's `via` -> the engagement event it is.
EVENT_FOR_VIA = {"webhook": "form_submitted", "api": "api_submitted", "batch": "api_submitted", "import": "imported"}
SECONDS_PER_DAY = 86_400


def kind(attribute: str) -> str | None:
    """The kind of attribute (a key of OPS_FOR), or None for an attribute fit rules do not know."""
    if attribute in TEXT_ATTRIBUTES:
        return "text"
    if attribute in ("tags", "budget", "budget_confirmed"):
        return attribute
    if attribute.startswith(CUSTOM_PREFIX) and len(attribute) > len(CUSTOM_PREFIX):
        return "custom"
    return None


@dataclass(frozen=True)
class FitRule:
    label: str
    attribute: str
    op: str
    # exists: None; equals/contains: str (bool for budget_confirmed); in: list of str;
    # gte/lte: (Decimal, currency) for budget, Decimal for a custom field.
    value: Any
    points: int


@dataclass(frozen=True)
class EngagementRule:
    label: str
    event: str
    points: int


@dataclass(frozen=True)
class Grades:
    a: float = 75
    b: float = 50
    c: float = 25


@dataclass(frozen=True)
class Temperature:
    hot: float = 70
    warm: float = 40


@dataclass(frozen=True)
class Model:
    fit_rules: tuple[FitRule, ...] = ()
    engagement_rules: tuple[EngagementRule, ...] = ()
    half_life_days: float = 14.0
    grades: Grades = field(default_factory=Grades)
    temperature: Temperature = field(default_factory=Temperature)
    version: int = 0


# A workspace that saved no model scores by this one (version 0).
DEFAULT_MODEL = Model(
    fit_rules=(
        FitRule("Has a company", "company", "exists", None, 10),
        FitRule("Has a position", "position", "exists", None, 5),
        FitRule("Budget confirmed", "budget_confirmed", "exists", None, 15),
    ),
    engagement_rules=(
        EngagementRule("Submitted a form", "form_submitted", 20),
        EngagementRule("Came in through the API", "api_submitted", 10),
        EngagementRule("Imported", "imported", 5),
    ),
)


@dataclass(frozen=True)
class Facts:
    """What fit rules read about a lead."""

    company: str | None = None
    position: str | None = None
    channel: str | None = None
    source: str | None = None
    country: str | None = None
    tags: tuple[str, ...] = ()
    budget: tuple[Decimal, str] | None = None
    budget_confirmed: bool = False
    custom: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Touch:
    event: str
    at: datetime


@dataclass(frozen=True)
class FitLine:
    label: str
    attribute: str
    points: int


@dataclass(frozen=True)
class EngagementLine:
    label: str
    event: str
    at: datetime
    points: int
    decayed_points: float


@dataclass(frozen=True)
class Score:
    score: int
    grade: str
    temperature: str
    fit: list[FitLine]
    engagement: list[EngagementLine]
    model_version: int


def decay(points: float, age_days: float, half_life_days: float) -> float:
    """Points left after `age_days`: halved every half-life; an event dated in the future counts in full."""
    return float(points * 0.5 ** (max(age_days, 0.0) / half_life_days))


def grade(score: float, grades: Grades) -> str:
    if score >= grades.a:
        return "A"
    if score >= grades.b:
        return "B"
    if score >= grades.c:
        return "C"
    return "D"


def temperature(score: float, thresholds: Temperature) -> str:
    if score >= thresholds.hot:
        return "hot"
    if score >= thresholds.warm:
        return "warm"
    return "cold"


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text or None


def as_number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _value(facts: Facts, attribute: str) -> Any:
    if attribute.startswith(CUSTOM_PREFIX):
        return facts.custom.get(attribute.removeprefix(CUSTOM_PREFIX))
    return getattr(facts, attribute)


def applies(rule: FitRule, facts: Facts) -> bool:
    """Whether the lead matches the rule; a lead without the attribute matches only nothing (not even lte)."""
    value = _value(facts, rule.attribute)
    if rule.attribute == "budget_confirmed":
        return bool(value) if rule.op == "exists" else bool(value) is bool(rule.value)
    if rule.attribute == "tags":
        tags = {t.casefold() for t in value}
        if rule.op == "exists":
            return bool(tags)
        wanted = [rule.value] if rule.op == "contains" else rule.value
        return any(str(w).casefold() in tags for w in wanted)
    if rule.attribute == "budget":
        if value is None:
            return False
        if rule.op == "exists":
            return True
        amount, currency = value
        bound, bound_currency = rule.value
        if currency != bound_currency:
            return False
        return bool(amount >= bound if rule.op == "gte" else amount <= bound)
    if rule.op in ("gte", "lte"):
        number = as_number(value)
        if number is None:
            return False
        return bool(number >= rule.value if rule.op == "gte" else number <= rule.value)
    text = _text(value)
    if text is None:
        return False
    folded = text.casefold()
    if rule.op == "exists":
        return True
    if rule.op == "equals":
        return folded == str(rule.value).strip().casefold()
    if rule.op == "in":
        return folded in {str(v).strip().casefold() for v in rule.value}
    return str(rule.value).casefold() in folded  # contains


def compute(facts: Facts, touches: Sequence[Touch], model: Model, now: datetime) -> Score:
    """The lead's score: fit points plus decayed engagement points, clamped to 0-100 and rounded."""
    fit = [FitLine(r.label, r.attribute, r.points) for r in model.fit_rules if applies(r, facts)]
    engagement = []
    for touch in touches:
        for rule in model.engagement_rules:
            if rule.event != touch.event:
                continue
            age_days = (now - touch.at).total_seconds() / SECONDS_PER_DAY
            decayed = decay(rule.points, age_days, model.half_life_days)
            engagement.append(EngagementLine(rule.label, rule.event, touch.at, rule.points, decayed))
    total = sum(line.points for line in fit) + sum(line.decayed_points for line in engagement)
    score = round(min(max(total, 0.0), 100.0))
    return Score(
        score=score, grade=grade(score, model.grades), temperature=temperature(score, model.temperature),
        fit=fit, engagement=engagement, model_version=model.version,
    )
