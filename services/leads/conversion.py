"""The learned probability of conversion: a lead's features, and predicting from a trained model's stored
intercept and coefficients (pure Python: no scikit-learn object is kept or loaded). Training is in
conversion_training.py; both read leads through `features`, so they cannot disagree on what a lead is.

A feature is a name and a value: one-hot categories (`channel=referral`, `tag=vip`) are 1.0, activity is
log1p of the touches of each engagement event. A category seen in too few training examples folds into
`<attribute>=(rare)`; a model knows its categories by the names it has coefficients for.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Container
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

import asyncpg

from services.common.db import Connection
from services.common.workers import notify
from services.leads.score_inputs import LeadInputs

CHANNEL = "leads_conversion"
# Retraining for new history waits for the nightly run, at this time (UTC): one training a day per workspace
# however many deals close, at an hour when few people are at work.
NIGHTLY_AT = time(2, 0, tzinfo=UTC)
# The bucket of a category seen in too few examples. Not `other`: `channel=other` is a real channel.
RARE = "(rare)"
# Text values are cut to this, so a long custom field cannot make a huge feature name.
MAX_VALUE_CHARS = 60
SINGLE_VALUED = ("channel", "source", "country")
_WORD = re.compile(r"[^\W_]+")
_FLAG_LABELS = {
    "has_company": "Has a company",
    "has_position": "Has a position",
    "has_email": "Has an email",
    "has_phone": "Has a phone",
    "budget_confirmed": "Budget confirmed",
}
_EVENT_LABELS = {
    "form_submitted": "Form submissions",
    "api_submitted": "Submissions through the API",
    "imported": "Imports",
}
_ATTRIBUTE_LABELS = {
    "channel": "Channel", "source": "Source", "country": "Country", "tag": "Tag", "position_word": "Position word",
    "budget": "Budget",
}


@dataclass(frozen=True)
class Factor:
    feature: str  # e.g. "channel=referral"
    label: str  # in words, e.g. "Channel is referral"
    contribution: float  # its share of the log-odds: positive raises the probability


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list, tuple)):
        return None
    text = str(value).strip().casefold()
    return text[:MAX_VALUE_CHARS] or None


def categories(inputs: LeadInputs) -> list[tuple[str, str]]:
    """The lead's categorical features as (attribute, value), values case-folded; each pair once."""
    facts = inputs.facts
    pairs: list[tuple[str, str]] = []
    for attribute in SINGLE_VALUED:
        value = _text(getattr(facts, attribute))
        if value is not None:
            pairs.append((attribute, value))
    if facts.position:
        # Words rather than the whole title: "Head of Sales" and "Sales Director" share "sales".
        pairs += [("position_word", word) for word in dict.fromkeys(_WORD.findall(facts.position.casefold()))]
    pairs += [("tag", tag) for tag in dict.fromkeys(t for t in map(_text, facts.tags) if t)]
    for key, raw in facts.custom.items():
        value = _text(raw)
        if value is not None:
            pairs.append((f"custom.{key}", value))
    if facts.budget is not None:
        amount, currency = facts.budget
        # The order of magnitude, per currency: 15,000 RUB and 15,000 USD are different budgets.
        magnitude = math.floor(math.log10(amount)) if amount >= 1 else 0
        pairs.append(("budget", f"{currency}:1e{magnitude}"))
    return pairs


def measures(inputs: LeadInputs, until: datetime) -> dict[str, float]:
    """Presence flags, and the activity up to `until`: log1p of the touches of each engagement event (log, so
    the tenth form adds less than the second)."""
    facts = inputs.facts
    flags = {
        "has_company": facts.company is not None, "has_position": facts.position is not None,
        "has_email": inputs.has_email, "has_phone": inputs.has_phone, "budget_confirmed": facts.budget_confirmed,
    }
    values = {name: 1.0 for name, present in flags.items() if present}
    counts: dict[str, int] = {}
    for touch in inputs.touches:
        if touch.at <= until:
            counts[touch.event] = counts.get(touch.event, 0) + 1
    for event, count in counts.items():
        values[f"touches.{event}"] = math.log1p(count)
    return values


def fold(pairs: list[tuple[str, str]], values: dict[str, float], known: Container[str]) -> dict[str, float]:
    """The features a model sees: `values` plus each category it knows, a category it does not know as its
    attribute's rare bucket (when the model has one), else nothing. Updates and returns `values`."""
    for attribute, value in pairs:
        name = f"{attribute}={value}"
        if name in known:
            values[name] = 1.0
        else:
            rare = f"{attribute}={RARE}"
            if rare in known:
                values[rare] = 1.0
    return values


def label(feature: str) -> str:
    """The feature in words, e.g. "Channel is referral", "Form submissions (log of the count)"."""
    if feature in _FLAG_LABELS:
        return _FLAG_LABELS[feature]
    if feature.startswith("touches."):
        event = feature.removeprefix("touches.")
        return f"{_EVENT_LABELS.get(event, event)} (log of the count)"
    attribute, _, value = feature.partition("=")
    name = _ATTRIBUTE_LABELS.get(attribute) or f"Custom field {attribute.removeprefix('custom.')}"
    if value == RARE:
        return f"{name} is a rare one"
    if attribute == "tag":
        return f"Tagged {value}"
    if attribute == "position_word":
        return f"Position mentions {value!r}"
    if attribute == "budget":
        currency, _, magnitude = value.partition(":1e")
        return f"Budget of the order of {10 ** int(magnitude):,} {currency}" if magnitude.isdigit() else value
    return f"{name} is {value}"


def sigmoid(z: float) -> float:
    # Two forms, so a large |z| does not overflow exp().
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@dataclass(frozen=True)
class Predictor:
    id: uuid.UUID
    trained_at: datetime
    intercept: float
    coefficients: dict[str, float]

    def features(self, inputs: LeadInputs, now: datetime) -> dict[str, float]:
        return fold(categories(inputs), measures(inputs, now), self.coefficients)

    def probability(self, inputs: LeadInputs, now: datetime) -> float:
        weights = self.coefficients
        z = self.intercept
        for name, value in self.features(inputs, now).items():
            z += weights.get(name, 0.0) * value
        return sigmoid(z)

    def explain(self, inputs: LeadInputs, now: datetime, top: int = 5) -> list[Factor]:
        """The features that moved this lead's log-odds most (either way), largest first."""
        weights = self.coefficients
        factors = [
            Factor(name, label(name), weights[name] * value)
            for name, value in self.features(inputs, now).items() if weights.get(name)
        ]
        factors.sort(key=lambda f: abs(f.contribution), reverse=True)
        return factors[:top]


def predictor_of(row: asyncpg.Record) -> Predictor:
    return Predictor(
        id=row["id"], trained_at=row["trained_at"], intercept=row["intercept"],
        coefficients={name: float(weight) for name, weight in row["coefficients"].items()},
    )


async def load_active(conn: Connection, workspace_id: uuid.UUID) -> Predictor | None:
    """The workspace's newest model if it is usable (state `active`); None: score by the rules alone."""
    # One primary-key probe and the coefficients parsed: ~0.1 ms, so callers load it per chunk, uncached.
    row = await conn.fetchrow(
        """
        SELECT id, state, trained_at, intercept, coefficients FROM leads.conversion_models
        WHERE workspace_id = $1 ORDER BY id DESC LIMIT 1
        """,
        workspace_id,
    )
    if row is None or row["state"] != "active":
        return None
    return predictor_of(row)


def next_nightly(now: datetime) -> datetime:
    """The next nightly training run strictly after `now`."""
    today = datetime.combine(now.astimezone(UTC).date(), NIGHTLY_AT)
    return today if today > now else today + timedelta(days=1)


async def request_training(
    conn: Connection, workspace_id: uuid.UUID, *, requested_by: uuid.UUID
) -> asyncpg.Record:
    """A person asks for the workspace's model to be trained again now; returns the pending request
    (requested_at, requested_by, due_at), now due and credited to them, and wakes the trainer. While the
    workspace is training, this waits for it (seconds) and then asks for one more training."""
    row: asyncpg.Record | None = await conn.fetchrow(
        """
        INSERT INTO leads.conversion_requests AS r (workspace_id, requested_by, due_at) VALUES ($1, $2, now())
        ON CONFLICT (workspace_id) DO UPDATE
        SET due_at = LEAST(r.due_at, now()), requested_by = excluded.requested_by, requested_at = now()
        RETURNING requested_at, requested_by, due_at
        """,
        workspace_id, requested_by,
    )
    assert row is not None  # INSERT ... ON CONFLICT DO UPDATE ... RETURNING always returns the row
    await notify(conn, CHANNEL)
    return row


async def request_nightly_training(conn: Connection, workspace_id: uuid.UUID) -> None:
    """Asks for the workspace's model to be trained at the next nightly run, for new history. A pending request
    is due no later than that already, so it is left as it is; and ON CONFLICT DO NOTHING does not wait for the
    trainer's lock on that row, so recording a deal's outcome is never held up by a training."""
    await conn.execute(
        """
        INSERT INTO leads.conversion_requests (workspace_id, due_at) VALUES ($1, $2)
        ON CONFLICT (workspace_id) DO NOTHING
        """,
        workspace_id, next_nightly(datetime.now(UTC)),
    )
