"""A workspace's scoring model in leads.scoring_models: reading it (the default when none was saved), saving a
change under If-Match, and checking fit rules before they are stored."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import asyncpg
from pydantic import ValidationError

from services.common.db import Connection
from services.common.money import Money
from services.leads import scoring

_COLUMNS = "fit_rules, engagement_rules, half_life_days, grades, temperature, version"
_MAX_IN = 100
_MAX_TEXT = 200


def as_json(model: scoring.Model) -> dict[str, Any]:
    """The model as the API shows it and the table stores it."""
    return {
        "fit_rules": [_fit_json(r) for r in model.fit_rules],
        "engagement_rules": [{"label": r.label, "event": r.event, "points": r.points} for r in model.engagement_rules],
        "half_life_days": model.half_life_days,
        "grades": {"a": model.grades.a, "b": model.grades.b, "c": model.grades.c},
        "temperature": {"hot": model.temperature.hot, "warm": model.temperature.warm},
        "version": model.version,
    }


def _fit_json(rule: scoring.FitRule) -> dict[str, Any]:
    value: Any = rule.value
    if rule.attribute == "budget" and value is not None:
        value = {"amount": str(value[0]), "currency": value[1]}
    elif isinstance(value, Decimal):
        value = str(value)
    elif isinstance(value, tuple):
        value = list(value)
    return {"label": rule.label, "attribute": rule.attribute, "op": rule.op, "value": value, "points": rule.points}


def _fit_rule(data: dict[str, Any]) -> scoring.FitRule:
    """A stored (already checked) fit rule."""
    value = data.get("value")
    if data["attribute"] == "budget" and value is not None:
        value = (Decimal(value["amount"]), value["currency"])
    elif data["op"] in ("gte", "lte"):
        value = Decimal(str(value))
    elif data["op"] == "in":
        value = tuple(value or ())
    return scoring.FitRule(data["label"], data["attribute"], data["op"], value, data["points"])


def _model(row: asyncpg.Record | None) -> scoring.Model:
    if row is None:
        return scoring.DEFAULT_MODEL
    return scoring.Model(
        fit_rules=tuple(_fit_rule(r) for r in row["fit_rules"]),
        engagement_rules=tuple(scoring.EngagementRule(r["label"], r["event"], r["points"])
                               for r in row["engagement_rules"]),
        half_life_days=row["half_life_days"],
        grades=scoring.Grades(**row["grades"]),
        temperature=scoring.Temperature(**row["temperature"]),
        version=row["version"],
    )


async def load(conn: Connection, workspace_id: uuid.UUID) -> scoring.Model:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM leads.scoring_models WHERE workspace_id = $1", workspace_id)
    return _model(row)


async def save(
    conn: Connection, workspace_id: uuid.UUID, user_id: uuid.UUID, changes: dict[str, Any],
    expected_version: int | None,
) -> scoring.Model | None:
    """Applies `changes` (checked, in stored form) over the current model; None when `expected_version` is stale
    (the caller answers 412). The default model is version 0, so its first save makes version 1."""
    current = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM leads.scoring_models WHERE workspace_id = $1 FOR UPDATE", workspace_id
    )
    base = as_json(_model(current))
    if expected_version is not None and expected_version != base["version"]:
        return None
    values = base | changes
    row = await conn.fetchrow(
        f"""
        INSERT INTO leads.scoring_models
            (workspace_id, fit_rules, engagement_rules, half_life_days, grades, temperature, updated_by)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (workspace_id) DO UPDATE SET
            fit_rules = excluded.fit_rules, engagement_rules = excluded.engagement_rules,
            half_life_days = excluded.half_life_days, grades = excluded.grades, temperature = excluded.temperature,
            updated_by = excluded.updated_by, updated_at = now(), version = leads.scoring_models.version + 1
        RETURNING {_COLUMNS}
        """,
        workspace_id, values["fit_rules"], values["engagement_rules"], float(values["half_life_days"]),
        values["grades"], values["temperature"], user_id,
    )
    return _model(row)


def check_fit_rule(index: int, rule: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """A fit rule (label, points and op already parsed) in stored form, and the errors naming its fields
    (`fit_rules[2].op`); the value's shape depends on the attribute and the operator."""
    name = f"fit_rules[{index}]"
    attribute, op, value = rule["attribute"], rule["op"], rule.get("value")
    kind = scoring.kind(attribute)
    if kind is None:
        known = ", ".join((*scoring.ATTRIBUTES, "custom.<key>"))
        return rule, [_error(f"{name}.attribute", "unknown_attribute", f"Score on one of: {known}.")]
    if op not in scoring.OPS_FOR[kind]:
        allowed = ", ".join(scoring.OPS_FOR[kind])
        return rule, [_error(f"{name}.op", "op_not_allowed", f"{attribute} takes the operators {allowed}.")]
    field = f"{name}.value"
    stored: Any = None
    if op == "exists":
        if value is not None:
            return rule, [_error(field, "not_expected", "exists takes no value: leave it out or send null.")]
    elif kind == "budget":
        try:
            money = Money.model_validate(value)
        except ValidationError:
            return rule, [_error(field, "money", 'Send the budget as {"amount": "15000", "currency": "EUR"}.')]
        stored = {"amount": str(money.amount), "currency": money.currency}
    elif kind == "budget_confirmed":
        if not isinstance(value, bool):
            return rule, [_error(field, "bool_type", "budget_confirmed equals true or false.")]
        stored = value
    elif op in ("gte", "lte"):
        number = scoring.as_number(value)
        if number is None:
            return rule, [_error(field, "decimal_type", f"{op} compares with a number, e.g. 50 or \"12.5\".")]
        stored = str(number)
    elif op == "in":
        if (not isinstance(value, list) or not 1 <= len(value) <= _MAX_IN
                or not all(_short_text(v) for v in value)):
            return rule, [_error(field, "list_type", f"in takes a list of 1 to {_MAX_IN} non-empty texts.")]
        stored = [v.strip() for v in value]
    elif isinstance(value, str) and _short_text(value):
        stored = value.strip()
    else:
        return rule, [_error(field, "string_type", f"{op} compares with a non-empty text.")]
    if attribute == "country" and stored is not None:
        stored = [v.upper() for v in stored] if isinstance(stored, list) else stored.upper()
    return {**rule, "value": stored}, []


def _short_text(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value.strip()) <= _MAX_TEXT and "\x00" not in value


def _error(field: str, code: str, message: str) -> dict[str, str]:
    return {"field": field, "code": code, "message": message}
