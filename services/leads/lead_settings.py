"""A workspace's capture settings: the phone region, disqualification reasons and custom lead fields."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from services.common.db import Connection
from services.leads.intake import CaptureSettings

# The reasons a new workspace starts with (also the column's server default in models.LeadSettings).
DEFAULT_REASONS = ("no_budget", "no_need", "no_authority", "bad_timing", "competitor", "unreachable", "spam")


def _settings(row: asyncpg.Record | None) -> CaptureSettings:
    if row is None:
        return CaptureSettings(disqualification_reasons=DEFAULT_REASONS)
    return CaptureSettings(
        default_region=row["default_region"],
        custom_fields=tuple(row["custom_fields"]),
        disqualification_reasons=tuple(row["disqualification_reasons"]),
        version=row["version"],
    )


async def load(conn: Connection, workspace_id: uuid.UUID) -> CaptureSettings:
    row = await conn.fetchrow(
        "SELECT default_region, custom_fields, disqualification_reasons, version FROM leads.lead_settings "
        "WHERE workspace_id = $1",
        workspace_id,
    )
    return _settings(row)


async def save(
    conn: Connection, workspace_id: uuid.UUID, changes: dict[str, Any], expected_version: int | None
) -> CaptureSettings | None:
    """Applies `changes`; returns None when `expected_version` is stale (the caller answers 412)."""
    current = await conn.fetchrow(
        "SELECT default_region, custom_fields, disqualification_reasons, version FROM leads.lead_settings "
        "WHERE workspace_id = $1 FOR UPDATE",
        workspace_id,
    )
    base = _settings(current)
    if expected_version is not None and expected_version != base.version:
        return None
    values = {
        "default_region": changes.get("default_region", base.default_region),
        "custom_fields": changes.get("custom_fields", list(base.custom_fields)),
        "disqualification_reasons": changes.get("disqualification_reasons", list(base.disqualification_reasons)),
    }
    row = await conn.fetchrow(
        """
        INSERT INTO leads.lead_settings (workspace_id, default_region, custom_fields, disqualification_reasons)
        VALUES ($1, $2, $3, $4)
        ON CONFLICT (workspace_id) DO UPDATE SET
            default_region = excluded.default_region, custom_fields = excluded.custom_fields,
            disqualification_reasons = excluded.disqualification_reasons, updated_at = now(),
            version = leads.lead_settings.version + 1
        RETURNING default_region, custom_fields, disqualification_reasons, version
        """,
        workspace_id, values["default_region"], values["custom_fields"], values["disqualification_reasons"],
    )
    return _settings(row)
