"""Playbooks: what a rep says and does at a stage — the script and the steps (task templates) — versioned.

Saving a playbook adds a version; the newest is the stage's playbook and the older ones stay readable. Each
new version publishes playbook.updated with its steps, from which the tasks service makes tasks when a deal
enters the stage. Writes run with the stage's pipeline locked, so versions of one stage never race.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import asyncpg
from pydantic_core import PydanticCustomError

from services.common.db import Connection
from services.common.ids import new_id
from services.common.outbox import publish
from services.contracts.deals import PlaybookStepV1, PlaybookUpdatedV1

PLAYBOOK_COLUMNS = "workspace_id, id, pipeline_id, stage_id, version, script, steps, created_at, created_by"
MAX_STEPS = 30


class TaskType(StrEnum):
    call = "call"
    meeting = "meeting"
    visit = "visit"
    email = "email"
    proposal = "proposal"
    follow_up = "follow_up"
    other = "other"


class DueUnit(StrEnum):
    """Counted in the assignee's working time (their working hours)."""

    working_days = "working_days"
    working_hours = "working_hours"
    working_minutes = "working_minutes"


# The roles of the sales process a step may go to (members' roles in the leads service's roster).
ASSIGNEE_ROLES = ("hunter", "closer", "farmer", "head_of_sales", "admin")


def check_assignee(value: str) -> str:
    """deal_owner, head_of_sales, or role:<role>, for pydantic."""
    rule = value.strip()
    if rule in ("deal_owner", "head_of_sales"):
        return rule
    role = rule.removeprefix("role:")
    if rule.startswith("role:") and role in ASSIGNEE_ROLES:
        return rule
    raise PydanticCustomError(
        "invalid_assignee",
        "The assignee is deal_owner, head_of_sales, or role:<role> with a role of {roles}.",
        {"roles": ", ".join(ASSIGNEE_ROLES)},
    )


async def current(conn: Connection, workspace_id: uuid.UUID, stage_id: uuid.UUID) -> asyncpg.Record | None:
    """The newest version of a stage's playbook; None when it has none."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""
        SELECT {PLAYBOOK_COLUMNS} FROM deals.playbooks WHERE workspace_id = $1 AND stage_id = $2
        ORDER BY version DESC LIMIT 1
        """,
        workspace_id, stage_id,
    )
    return row


async def page(
    conn: Connection, workspace_id: uuid.UUID, stage_id: uuid.UUID, limit: int, before: uuid.UUID | None
) -> list[asyncpg.Record]:
    """Every version, newest first, keyset-paginated on the id (UUIDv7: later versions have larger ids)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""
        SELECT {PLAYBOOK_COLUMNS} FROM deals.playbooks
        WHERE workspace_id = $1 AND stage_id = $2 AND ($3::uuid IS NULL OR id < $3)
        ORDER BY id DESC LIMIT $4
        """,
        workspace_id, stage_id, before, limit,
    )
    return rows


async def save(
    conn: Connection,
    workspace_id: uuid.UUID,
    pipeline_id: uuid.UUID,
    stage_id: uuid.UUID,
    script: str | None,
    steps: Sequence[Mapping[str, Any]],
    *,
    by: uuid.UUID | None,
    latest: asyncpg.Record | None,
) -> asyncpg.Record:
    """Adds the next version after `latest` (read with the pipeline locked) and publishes playbook.updated;
    returns `latest` unchanged when the script and steps are the same."""
    steps = [dict(step) for step in steps]
    if latest is not None and latest["script"] == script and latest["steps"] == steps:
        return latest
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""
        INSERT INTO deals.playbooks (workspace_id, id, pipeline_id, stage_id, version, script, steps, created_by)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        RETURNING {PLAYBOOK_COLUMNS}
        """,
        workspace_id, new_id(), pipeline_id, stage_id, (latest["version"] if latest else 0) + 1, script, steps, by,
    )
    assert row is not None
    await publish(
        conn,
        PlaybookUpdatedV1(
            workspace_id=workspace_id, pipeline_id=pipeline_id, stage_id=stage_id, playbook_version=row["version"],
            script=script, steps=[PlaybookStepV1(**step) for step in steps], updated_by=by,
            updated_at=row["created_at"] or datetime.now(UTC),
        ),
        workspace_id=workspace_id, subject=stage_id,
    )
    return row


async def delete_for_stages(conn: Connection, workspace_id: uuid.UUID, stage_ids: Sequence[uuid.UUID]) -> None:
    """Removed stages take their playbooks (every version) with them."""
    if stage_ids:
        await conn.execute(
            "DELETE FROM deals.playbooks WHERE workspace_id = $1 AND stage_id = ANY($2::uuid[])",
            workspace_id, list(stage_ids),
        )
