"""Taking a lead in: who owns it, the row, and `lead.created` in the same transaction."""

from __future__ import annotations

import asyncpg

from services.common.auth import Principal
from services.common.db import Connection
from services.common.ids import new_id
from services.common.outbox import publish
from services.common.problems import Forbidden
from services.contracts import LeadCreatedV1
from services.leads.repository import LeadRepository
from services.leads.schemas import LeadCreate


async def create_lead(conn: Connection, principal: Principal, data: LeadCreate) -> asyncpg.Record:
    values = data.model_dump()
    if not principal.sees_whole_workspace:
        # A rep's leads are their own; handing one to someone else is the head of sales' call.
        if data.owner_id not in (None, principal.user_id):
            raise Forbidden("A rep can create leads only for themselves.")
        values["owner_id"] = principal.user_id
    lead = await LeadRepository(conn, principal).add(new_id(), values)
    await publish(
        conn,
        LeadCreatedV1(
            lead_id=lead["id"], workspace_id=lead["workspace_id"], name=lead["name"], email=lead["email"],
            phone=lead["phone"], company=lead["company"], source=lead["source"], owner_id=lead["owner_id"],
            created_by=lead["created_by"], created_at=lead["created_at"],
        ),
        workspace_id=lead["workspace_id"],
        subject=lead["id"],
    )
    return lead
