"""What the leads service does with the events it subscribes to (services/contracts/catalogue.py). Each
handler runs in the inbox transaction, so its effects and the event's inbox row commit together."""

from __future__ import annotations

from services.common.db import Connection
from services.common.inbox import Handler
from services.contracts import CloudEvent, DealLostV1, DealWonV1, TaskOverdueV1
from services.leads import handoffs, outcomes


async def on_deal_won(conn: Connection, event: CloudEvent) -> None:
    won = DealWonV1.model_validate(event.data)
    await outcomes.record_won(conn, won, event.id)
    await handoffs.client_to_farmer(conn, won)


async def on_deal_lost(conn: Connection, event: CloudEvent) -> None:
    await outcomes.record_lost(conn, DealLostV1.model_validate(event.data), event.id)


async def on_task_overdue(conn: Connection, event: CloudEvent) -> None:
    await handoffs.first_contact_missed(conn, TaskOverdueV1.model_validate(event.data))


HANDLERS: dict[str, Handler] = {
    DealWonV1.event: on_deal_won,
    DealLostV1.event: on_deal_lost,
    TaskOverdueV1.event: on_task_overdue,
}
