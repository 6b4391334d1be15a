"""Opening a deal: by hand (POST /v1/deals) or from a qualified lead (services.deals.handoff). Places it in a
pipeline and stage, writes the first row of its stage history and publishes deal.created in the same
transaction."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg

from services.common.auth import Principal
from services.common.db import Connection
from services.common.ids import new_id
from services.common.outbox import publish
from services.common.problems import Forbidden, InvalidField
from services.contracts.deals import DealCreatedV1
from services.deals import amounts
from services.deals.repository import COLUMNS, as_fields
from services.deals.schemas import DealCreate

# The columns a new deal is written with, besides workspace_id, id and the times.
WRITTEN = (
    "pipeline_id", "stage_id", "title", "amount", "currency", "line_items", "expected_close_date", "company",
    "contact", "owner_id", "lead_id", "source", "channel", "region", "products", "custom", "tags", "created_by",
)


def event_fields(row: asyncpg.Record) -> dict[str, Any]:
    """A deal row as the fields of its events."""
    fields = as_fields(row)
    return {**fields, "deal_id": fields.pop("id"), "deal_version": fields.pop("version")}


async def place(
    conn: Connection, workspace_id: uuid.UUID, pipeline_id: uuid.UUID | None, stage_id: uuid.UUID | None
) -> tuple[uuid.UUID, uuid.UUID]:
    """The pipeline and stage a new deal starts in: the ones asked for, else the default pipeline and its first
    stage. The pipeline row is share-locked, so its stages cannot be rewritten until the deal is in."""
    if pipeline_id is None:
        pipeline_id = await conn.fetchval(
            "SELECT id FROM deals.pipelines WHERE workspace_id = $1 AND is_default FOR SHARE", workspace_id
        )
        if pipeline_id is None:  # only a service token, which belongs to no workspace, gets here
            raise InvalidField("pipeline_id", "There is no default pipeline to open the deal in.", "not_found")
    elif not await conn.fetchval(
        "SELECT true FROM deals.pipelines WHERE workspace_id = $1 AND id = $2 FOR SHARE", workspace_id, pipeline_id
    ):
        raise InvalidField("pipeline_id", f"There is no pipeline {pipeline_id}.", "not_found")
    stages = await conn.fetch(
        """
        SELECT id, phase, is_won, is_completed FROM deals.stages WHERE workspace_id = $1 AND pipeline_id = $2
        ORDER BY position
        """,
        workspace_id, pipeline_id,
    )
    if stage_id is None:
        return pipeline_id, stages[0]["id"]
    stage = next((s for s in stages if s["id"] == stage_id), None)
    if stage is None:
        raise InvalidField("stage_id", f"The pipeline {pipeline_id} has no stage {stage_id}.", "not_found")
    if stage["is_won"] or stage["is_completed"] or stage["phase"] == "post_sale":
        raise InvalidField(
            "stage_id", "A deal opens in a stage before the won stage; it reaches the won stage by moving there.",
            "closed_stage",
        )
    return pipeline_id, stage_id


def owner_for(principal: Principal, owner_id: uuid.UUID | None) -> uuid.UUID:
    """A rep's deal is their own; a head of sales or admin may give it to anyone (default: themselves)."""
    if owner_id is None or owner_id == principal.user_id:
        return principal.user_id
    if not principal.sees_whole_workspace:
        message = "A rep opens deals for themselves; giving a deal to another rep is the head of sales' call."
        raise Forbidden(message, errors=[{"field": "owner_id", "code": "forbidden", "message": message}])
    return owner_id


def values_from_request(principal: Principal, body: DealCreate) -> dict[str, Any]:
    """A POST body as the columns a deal is written with (all but where it is placed)."""
    items = body.line_items or []
    amounts.check_currencies(body.amount, items)
    amount = body.amount if body.amount is not None or not items else amounts.total(items)
    return {
        "title": body.title,
        "amount": amount.amount if amount is not None else None,
        "currency": amount.currency if amount is not None else None,
        "line_items": amounts.stored_items(items),
        "expected_close_date": body.expected_close_date,
        "company": body.company,
        "contact": body.contact.model_dump() if body.contact else None,
        "owner_id": owner_for(principal, body.owner_id),
        "lead_id": None,
        "source": body.source, "channel": body.channel, "region": body.region,
        "products": list(dict.fromkeys(body.products or [])),
        "custom": {k: v for k, v in (body.custom or {}).items() if v is not None},
        "tags": list(dict.fromkeys(body.tags or [])),
        "created_by": principal.user_id,
    }


async def open_deal(conn: Connection, workspace_id: uuid.UUID, values: Mapping[str, Any]) -> asyncpg.Record | None:
    """Inserts the deal, its first stage-history row and deal.created. None when the lead already has a deal
    (the unique lead_id index refused it): nothing is written then."""
    placeholders = ", ".join(f"${i}" for i in range(3, len(WRITTEN) + 3))
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""
        INSERT INTO deals.deals (workspace_id, id, {', '.join(WRITTEN)}) VALUES ($1, $2, {placeholders})
        ON CONFLICT DO NOTHING
        RETURNING {COLUMNS}
        """,
        workspace_id, new_id(), *(values[c] for c in WRITTEN),
    )
    if row is None:
        return None
    await conn.execute(
        """
        INSERT INTO deals.deal_stage_history (workspace_id, id, deal_id, from_stage_id, to_stage_id, moved_by,
            moved_at)
        VALUES ($1, $2, $3, NULL, $4, $5, $6)
        """,
        workspace_id, new_id(), row["id"], row["stage_id"], row["created_by"], row["stage_entered_at"],
    )
    await publish(conn, DealCreatedV1(**event_fields(row)), workspace_id=workspace_id, subject=row["id"])
    return row
