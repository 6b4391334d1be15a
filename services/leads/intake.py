"""From whatever arrived to a lead we can take in: shape checks, then the workspace's normalization rules.

Every way in (API, batch, webhook, import) passes through `validate_lead`, so a lead is held to the same rules
whichever door it came through, and every rejection names its field.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from services.common.db import Connection
from services.common.problems import validation_errors
from services.leads.schemas import LeadCreate


class InvalidLead(Exception):
    """The input cannot become a lead; `errors` are [{"field", "code", "message"}]."""

    def __init__(self, errors: Sequence[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = list(errors)


@dataclass(frozen=True)
class CaptureSettings:
    """A workspace's rules for taking leads in and qualifying them (GET /v1/lead-settings)."""

    default_region: str | None = None
    custom_fields: Sequence[Mapping[str, Any]] = field(default_factory=tuple)
    disqualification_reasons: Sequence[str] = field(default_factory=tuple)
    # Which BANT answers (budget, authority, need, timeline) a lead needs before it can be qualified.
    qualification_required: Sequence[str] = field(default_factory=tuple)
    version: int = 0


async def load_settings(conn: Connection, workspace_id: uuid.UUID) -> CaptureSettings:
    from services.leads.lead_settings import load  # the one place that reads lead_settings

    return await load(conn, workspace_id)


def validate_lead(raw: Mapping[str, Any], settings: CaptureSettings, *, prefix: str = "") -> LeadCreate:
    """Parses and normalizes one lead; raises InvalidLead naming each bad field (with `prefix`, e.g. items.3.)."""
    try:
        data = LeadCreate.model_validate(raw)
    except ValidationError as exc:
        # Located as FastAPI locates body fields, so a field called `path` or `query` keeps its name.
        located = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        raise InvalidLead(_prefixed(validation_errors(located), prefix)) from exc
    try:
        return prepare(data, settings)
    except InvalidLead as exc:
        raise InvalidLead(_prefixed(exc.errors, prefix)) from exc


def prepare(data: LeadCreate, settings: CaptureSettings) -> LeadCreate:
    """Normalizes a parsed lead with the workspace's rules: email, E.164 phone, names, tags, custom fields."""
    from services.leads import normalize

    errors: list[dict[str, str]] = []
    changes: dict[str, Any] = {}
    # The email was normalized with the shape (schemas.Email): it does not depend on the workspace.
    if data.phone is not None:
        try:
            changes["phone"] = normalize.normalize_phone(data.phone, settings.default_region)
        except ValueError as exc:
            errors.append({"field": "phone", "code": "invalid_phone", "message": str(exc)})
    for name in ("name", "company", "position"):
        value = getattr(data, name)
        if value is not None:
            changes[name] = normalize.clean_text(value)
    changes["tags"] = normalize.normalize_tags(data.tags)
    custom, custom_errors = normalize.check_custom(data.custom, settings.custom_fields)
    changes["custom"] = custom
    errors.extend(custom_errors)
    if errors:
        raise InvalidLead(errors)
    prepared = data.model_copy(update=changes)
    if not prepared.name:
        prepared = prepared.model_copy(update={"name": prepared.email or prepared.phone})
    if not prepared.name:
        message = "A lead needs a name, an email or a phone."
        raise InvalidLead([{"field": "name", "code": "missing", "message": message}])
    return prepared


def _prefixed(errors: Sequence[dict[str, str]], prefix: str) -> list[dict[str, str]]:
    return [{**e, "field": f"{prefix}{e['field']}"} for e in errors] if prefix else list(errors)
