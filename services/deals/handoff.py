"""The hunter -> closer hand-off: a qualified lead (lead.qualified) opens a deal, once per lead.

The deal opens in the workspace's default pipeline (created here, in the inbox transaction, if the workspace has
none yet) at its first stage: a stage is never picked by its name, so renaming or reordering stages cannot
break the hand-off. A workspace that wants qualified leads to start further on makes that stage its default
pipeline's first.
"""

from __future__ import annotations

from typing import Any

from services.common.db import Connection
from services.contracts.leads import LeadQualifiedV1
from services.deals import default_pipeline
from services.deals.opening import open_deal, place


def _region(custom: dict[str, Any]) -> str | None:
    for key in ("region", "country"):
        value = custom.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:200]
    return None


async def open_from_lead(conn: Connection, lead: LeadQualifiedV1) -> bool:
    """Opens the lead's deal; False when the lead already has one (redelivered, or qualified again after
    nurturing): the unique lead_id index makes the second insert a no-op."""
    if await conn.fetchval(
        "SELECT true FROM deals.deals WHERE workspace_id = $1 AND lead_id = $2", lead.workspace_id, lead.lead_id
    ):
        return False
    await default_pipeline.provision(conn, lead.workspace_id)
    pipeline_id, stage_id = await place(conn, lead.workspace_id, None, None)
    budget = lead.qualification.budget
    contact = {"name": lead.name, "email": lead.email, "phone": lead.phone}
    values = {
        "pipeline_id": pipeline_id, "stage_id": stage_id,
        "title": (lead.company or lead.name)[:200],
        "amount": budget.amount if budget else None,
        "currency": budget.currency if budget else None,
        "line_items": [],
        "expected_close_date": None,
        "company": lead.company,
        "contact": contact,
        # The closer distribution assigned; without one free yet, the hunter keeps it until someone hands it on.
        "owner_id": lead.closer_id or lead.owner_id,
        "lead_id": lead.lead_id,
        "source": lead.source, "channel": lead.channel, "region": _region(lead.custom),
        "products": list(dict.fromkeys(lead.qualification.products)),
        "custom": {},
        "tags": [],
        "created_by": None,
    }
    return await open_deal(conn, lead.workspace_id, values) is not None
