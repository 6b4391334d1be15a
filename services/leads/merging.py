"""Merging two leads by hand: the survivor takes what it lacks, the other is folded in, and both are audited."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.common.auth import Principal
from services.common.db import Connection
from services.common.ids import new_id
from services.common.outbox import publish
from services.common.problems import Conflict
from services.contracts import LeadMergedV1
from services.leads import score_store
from services.leads.lifecycle import record_status
from services.leads.repository import COLUMNS
from services.leads.schemas import Status

SCALARS = ("email", "phone", "company", "position", "notes", "owner_id")
FIRST_TOUCH = ("source", "source_id", "channel", "utm")


def _combine(survivor: asyncpg.Record, other: asyncpg.Record) -> tuple[dict[str, Any], dict[str, Any]]:
    """The survivor's new values and the audit: for each field, the value kept and which lead it came from."""
    values: dict[str, Any] = {}
    audit: dict[str, Any] = {}
    for field in SCALARS:
        if survivor[field] is None and other[field] is not None:
            values[field] = other[field]
            audit[field] = {"value": _json(other[field]), "from": str(other["id"])}
        elif survivor[field] is not None:
            audit[field] = {
                "value": _json(survivor[field]), "from": str(survivor["id"]),
                **({"discarded": _json(other[field])} if other[field] not in (None, survivor[field]) else {}),
            }
    # The first touch is the earlier lead's: that is where the person really came from.
    if other["created_at"] < survivor["created_at"]:
        for field in FIRST_TOUCH:
            values[field] = other[field]
        audit["first_touch"] = {"from": str(other["id"])}
    tags = list(survivor["tags"]) + [t for t in other["tags"] if t not in survivor["tags"]]
    if tags != list(survivor["tags"]):
        values["tags"] = tags
        audit["tags"] = {"added": [t for t in other["tags"] if t not in survivor["tags"]], "from": str(other["id"])}
    taken = {k: v for k, v in other["custom"].items() if k not in survivor["custom"]}
    if taken:
        values["custom"] = {**survivor["custom"], **taken}
        audit["custom"] = {"added": taken, "from": str(other["id"])}
    return values, audit


def _json(value: Any) -> Any:
    return str(value) if not isinstance(value, str | int | float | bool | type(None) | list | dict) else value


async def merge_leads(
    conn: Connection, principal: Principal, survivor: asyncpg.Record, other: asyncpg.Record
) -> asyncpg.Record:
    """Folds `other` into `survivor` (both locked by the caller, in id order)."""
    for lead in (survivor, other):
        if lead["merged_into_id"] is not None:
            raise Conflict(f"Lead {lead['id']} was already merged into {lead['merged_into_id']}.")
    workspace = survivor["workspace_id"]
    values, audit = _combine(survivor, other)
    now = datetime.now(UTC)
    # Every email and phone the other lead had now finds the survivor; so do its touches.
    await conn.execute(
        "UPDATE leads.lead_identities SET lead_id = $3 WHERE workspace_id = $1 AND lead_id = $2",
        workspace, other["id"], survivor["id"],
    )
    await conn.execute(
        "UPDATE leads.lead_touches SET lead_id = $3 WHERE workspace_id = $1 AND lead_id = $2",
        workspace, other["id"], survivor["id"],
    )
    assignments = "".join(f", {f} = ${i}" for i, f in enumerate(values, start=4))
    row = await conn.fetchrow(
        f"""
        UPDATE leads.leads SET updated_at = $3, version = version + 1{assignments}
        WHERE workspace_id = $1 AND id = $2
        RETURNING {COLUMNS}
        """,
        workspace, survivor["id"], now, *values.values(),
    )
    assert row is not None
    await conn.execute(
        "UPDATE leads.leads SET merged_into_id = $3 WHERE workspace_id = $1 AND id = $2",
        workspace, other["id"], survivor["id"],
    )
    await record_status(conn, principal, other, Status.merged, comment=f"merged into {survivor['id']}")
    await conn.execute(
        """
        INSERT INTO leads.lead_merges (workspace_id, id, survivor_id, merged_id, fields, merged_by, merged_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        """,
        workspace, new_id(), survivor["id"], other["id"], audit, principal.user_id, now,
    )
    await publish(
        conn,
        LeadMergedV1(
            lead_id=survivor["id"], workspace_id=workspace, how="manual", merged_lead_id=other["id"],
            filled=sorted(values), owner_id=row["owner_id"], merged_by=principal.user_id, merged_at=now,
        ),
        workspace_id=workspace,
        subject=survivor["id"],
    )
    # The survivor has the other's touches and fields now; the other, merged away, loses its stored score.
    await score_store.enqueue(conn, workspace, [survivor["id"], other["id"]])
    return row
