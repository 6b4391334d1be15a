"""What the deals service does with the events it subscribes to (services/contracts/catalogue.py). Each handler
runs in the inbox transaction, so its effects and the event's inbox row commit together."""

from __future__ import annotations

from services.common.db import Connection
from services.common.inbox import Handler
from services.contracts import CloudEvent, LeadQualifiedV1
from services.deals import handoff


async def on_lead_qualified(conn: Connection, event: CloudEvent) -> None:
    await handoff.open_from_lead(conn, LeadQualifiedV1.model_validate(event.data))


HANDLERS: dict[str, Handler] = {
    LeadQualifiedV1.event: on_lead_qualified,
}
