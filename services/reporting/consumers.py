"""What reporting does with each event it subscribes to (see services/contracts/catalogue.py)."""

from __future__ import annotations

from services.common.db import Connection
from services.common.inbox import Handler
from services.contracts import CloudEvent, LeadCreatedV1

UNKNOWN_SOURCE = "unknown"


async def on_lead_created(conn: Connection, event: CloudEvent) -> None:
    lead = LeadCreatedV1.model_validate(event.data)
    await conn.execute(
        """
        INSERT INTO reporting.lead_facts (workspace_id, lead_id, source, owner_id, created_at)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT DO NOTHING
        """,
        lead.workspace_id, lead.lead_id, lead.source or UNKNOWN_SOURCE, lead.owner_id, lead.created_at,
    )


HANDLERS: dict[str, Handler] = {
    LeadCreatedV1.event: on_lead_created,
}
