"""Editing a lead (PATCH): normalized like capture, its email and phone kept unique, lead.updated published; a
new owner is recorded as a manual assignment and announced with lead.assigned."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.common.auth import Principal
from services.common.db import Connection
from services.common.outbox import publish
from services.common.problems import Conflict, Forbidden, InvalidFields
from services.contracts import LeadUpdatedV1
from services.leads import distribution, normalize, score_store
from services.leads.intake import CaptureSettings
from services.leads.repository import COLUMNS
from services.leads.schemas import LeadPatch

EDITABLE = ("name", "email", "phone", "company", "position", "notes", "tags", "custom", "owner_id")


def _normalized(patch: LeadPatch, lead: asyncpg.Record, settings: CaptureSettings) -> dict[str, Any]:
    """The patch's fields in stored form; raises InvalidFields naming each bad one."""
    sent = patch.model_dump(include=patch.model_fields_set)
    errors: list[dict[str, str]] = []
    values: dict[str, Any] = {}
    for field, value in sent.items():
        try:
            if value is None:
                if field == "name":
                    raise ValueError("A lead keeps a name; send a new one instead of null.")
                values[field] = [] if field == "tags" else {} if field == "custom" else None
            elif field == "email":
                values[field] = normalize.normalize_email(value)
            elif field == "phone":
                values[field] = normalize.normalize_phone(value, settings.default_region)
            elif field in ("name", "company", "position"):
                values[field] = normalize.clean_text(value)
            elif field == "tags":
                values[field] = normalize.normalize_tags(value)
            else:
                values[field] = value
        except ValueError as exc:
            errors.append({"field": field, "code": f"invalid_{field}", "message": str(exc)})
    if "custom" in sent and sent["custom"] is not None:
        # JSON merge patch: keys sent replace, keys sent as null are removed, the rest stay.
        merged = {**lead["custom"], **sent["custom"]}
        merged = {k: v for k, v in merged.items() if v is not None}
        values["custom"], custom_errors = normalize.check_custom(merged, settings.custom_fields)
        errors.extend(custom_errors)
    if errors:
        raise InvalidFields(errors)
    return values


async def edit_lead(
    conn: Connection, principal: Principal, lead: asyncpg.Record, patch: LeadPatch, settings: CaptureSettings
) -> asyncpg.Record:
    """Applies a patch to a locked lead; returns it unchanged (same version) when nothing differs."""
    if lead["merged_into_id"] is not None:
        raise Conflict(f"This lead was merged into {lead['merged_into_id']}; edit that one.")
    values = _normalized(patch, lead, settings)
    changed = {f: v for f, v in values.items() if v != lead[f]}
    if "owner_id" in changed and not principal.sees_whole_workspace:
        message = "Handing a lead to another rep is the head of sales' call."
        raise Forbidden(message, errors=[{"field": "owner_id", "code": "forbidden", "message": message}])
    if not changed:
        return lead
    for kind in ("email", "phone"):
        if kind in changed:
            await _move_identity(conn, lead, kind, lead[kind], changed[kind])
    now = datetime.now(UTC)
    assignments = ", ".join(f"{f} = ${i}" for i, f in enumerate(changed, start=4))
    if "owner_id" in changed:
        # Assigned by hand: off the assignment queue (or unmatched, when the owner was removed).
        state = "assigned" if changed["owner_id"] is not None else "unmatched"
        assignments += f", assignment_state = '{state}', assignment_rule_id = NULL"
    row = await conn.fetchrow(
        f"""
        UPDATE leads.leads SET {assignments}, updated_at = $3, version = version + 1
        WHERE workspace_id = $1 AND id = $2
        RETURNING {COLUMNS}
        """,
        lead["workspace_id"], lead["id"], now, *changed.values(),
    )
    assert row is not None  # the caller holds the row lock
    await publish(
        conn,
        LeadUpdatedV1(
            lead_id=lead["id"], workspace_id=lead["workspace_id"], changed=sorted(changed),
            owner_id=row["owner_id"], previous_owner_id=lead["owner_id"], lead_version=row["version"],
            updated_by=principal.user_id, updated_at=now,
        ),
        workspace_id=lead["workspace_id"],
        subject=lead["id"],
    )
    if "owner_id" in changed:
        await distribution.record_manual(conn, lead, changed["owner_id"], principal.user_id, now)
    await score_store.enqueue(conn, lead["workspace_id"], [lead["id"]])
    return row


async def _move_identity(
    conn: Connection, lead: asyncpg.Record, kind: str, old: str | None, new: str | None
) -> None:
    """The lead's email or phone changed: the new one must not belong to another lead (409: merge them)."""
    if new is not None:
        owner = await conn.fetchval(
            """
            WITH claimed AS (
                INSERT INTO leads.lead_identities (workspace_id, kind, value, lead_id) VALUES ($1, $2, $3, $4)
                ON CONFLICT DO NOTHING RETURNING lead_id
            )
            SELECT lead_id FROM claimed
            UNION ALL
            SELECT lead_id FROM leads.lead_identities WHERE workspace_id = $1 AND kind = $2 AND value = $3
            LIMIT 1
            """,
            lead["workspace_id"], kind, new, lead["id"],
        )
        if owner != lead["id"]:
            raise Conflict(
                f"Another lead ({owner}) already has this {kind}; merge the two leads instead "
                f"(POST /v1/leads/{lead['id']}/merge).",
                errors=[{"field": kind, "code": "duplicate", "message": f"Lead {owner} has this {kind}."}],
            )
    if old is not None:
        await conn.execute(
            "DELETE FROM leads.lead_identities WHERE workspace_id = $1 AND kind = $2 AND value = $3 AND lead_id = $4",
            lead["workspace_id"], kind, old, lead["id"],
        )
