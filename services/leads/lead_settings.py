"""A workspace's lead settings: the phone region, disqualification reasons, custom lead fields and the BANT
answers a lead needs before it is qualified."""

from __future__ import annotations

import uuid
from typing import Any, Literal, get_args

import asyncpg

from services.common.db import Connection
from services.leads.intake import CaptureSettings

# The reasons a new workspace starts with (also the column's server default in models.LeadSettings).
DEFAULT_REASONS = ("no_budget", "no_need", "no_authority", "bad_timing", "competitor", "unreachable", "spam")
# The answers of a qualification (BANT), and those a new workspace requires (models.LeadSettings too).
Answer = Literal["budget", "authority", "need", "timeline"]
QUALIFICATION_ANSWERS: tuple[str, ...] = get_args(Answer)
DEFAULT_QUALIFICATION_REQUIRED = ("budget", "need")

_COLUMNS = "default_region, custom_fields, disqualification_reasons, qualification_required, version"


def _settings(row: asyncpg.Record | None) -> CaptureSettings:
    if row is None:
        return CaptureSettings(
            disqualification_reasons=DEFAULT_REASONS, qualification_required=DEFAULT_QUALIFICATION_REQUIRED
        )
    return CaptureSettings(
        default_region=row["default_region"],
        custom_fields=tuple(row["custom_fields"]),
        disqualification_reasons=tuple(row["disqualification_reasons"]),
        qualification_required=tuple(row["qualification_required"]),
        version=row["version"],
    )


async def load(conn: Connection, workspace_id: uuid.UUID) -> CaptureSettings:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM leads.lead_settings WHERE workspace_id = $1", workspace_id)
    return _settings(row)


async def save(
    conn: Connection, workspace_id: uuid.UUID, changes: dict[str, Any], expected_version: int | None
) -> CaptureSettings | None:
    """Applies `changes`; returns None when `expected_version` is stale (the caller answers 412)."""
    current = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM leads.lead_settings WHERE workspace_id = $1 FOR UPDATE", workspace_id
    )
    base = _settings(current)
    if expected_version is not None and expected_version != base.version:
        return None
    values = {
        "default_region": changes.get("default_region", base.default_region),
        "custom_fields": changes.get("custom_fields", list(base.custom_fields)),
        "disqualification_reasons": changes.get("disqualification_reasons", list(base.disqualification_reasons)),
        "qualification_required": changes.get("qualification_required", list(base.qualification_required)),
    }
    row = await conn.fetchrow(
        f"""
        INSERT INTO leads.lead_settings
            (workspace_id, default_region, custom_fields, disqualification_reasons, qualification_required)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (workspace_id) DO UPDATE SET
            default_region = excluded.default_region, custom_fields = excluded.custom_fields,
            disqualification_reasons = excluded.disqualification_reasons,
            qualification_required = excluded.qualification_required, updated_at = now(),
            version = leads.lead_settings.version + 1
        RETURNING {_COLUMNS}
        """,
        workspace_id, values["default_region"], values["custom_fields"], values["disqualification_reasons"],
        values["qualification_required"],
    )
    return _settings(row)
