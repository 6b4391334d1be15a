"""The hunter -> closer hand-off: lead.qualified, delivered to the deals service's inbox as the leads dispatcher
delivers it, opens one deal per lead in the default pipeline's first stage."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from services.common.auth import Role
from services.common.money import Money
from services.common.outbox import cloud_event
from services.common.testing import deliver_events, token_for
from services.contracts import LeadQualifiedV1, QualificationV1


@pytest.fixture
async def deliver(stack, deals) -> AsyncIterator[Any]:
    """Delivers CloudEvents to the deals service as the dispatcher does: signed, to /events."""
    async with httpx.AsyncClient(base_url=stack.url("deals")) as client:

        async def send(*events: dict) -> None:
            await deliver_events(client, *events)

        yield send


def qualified(workspace: uuid.UUID, lead_id: uuid.UUID, **fields: Any) -> dict:
    values: dict[str, Any] = {
        "lead_id": lead_id, "workspace_id": workspace, "name": "Ann Lee", "email": "ann@acme.test",
        "phone": "+14155550100", "company": "Acme", "source": "website", "channel": "web_form",
        "custom": {"country": "DE"}, "owner_id": uuid.uuid4(), "closer_id": uuid.uuid4(),
        "qualification": QualificationV1(
            budget=Money(amount="15000", currency="EUR"), budget_confirmed=True, products=["crm", "telephony"],
        ),
        "qualified_by": uuid.uuid4(), "qualified_at": datetime.now(UTC),
        **fields,
    }
    return cloud_event(LeadQualifiedV1(**values), workspace_id=workspace, subject=lead_id)


async def test_a_qualified_lead_opens_a_deal_for_its_closer_with_its_budget(
    deliver, deals, workspace, outbox, admin_db
):
    lead_id = uuid.uuid4()
    event = qualified(workspace, lead_id)

    await deliver(event)  # the workspace's first call: its default pipeline is created in the same transaction

    [deal] = (await deals.get("/v1/deals")).json()["items"]
    [pipeline] = (await deals.get("/v1/pipelines")).json()["items"]
    data = event["data"]
    assert deal["lead_id"] == str(lead_id)
    assert deal["owner_id"] == data["closer_id"]
    assert deal["pipeline_id"] == pipeline["id"]
    assert deal["stage_id"] == pipeline["stages"][0]["id"]
    assert deal["title"] == "Acme"
    assert deal["company"] == "Acme"
    assert deal["amount"] == {"amount": "15000.00", "currency": "EUR"}
    assert deal["products"] == ["crm", "telephony"]
    assert (deal["source"], deal["channel"], deal["region"]) == ("website", "web_form", "DE")
    assert deal["contact"] == {"name": "Ann Lee", "email": "ann@acme.test", "phone": "+14155550100"}
    assert deal["created_by"] is None
    assert deal["status"] == "open"
    [created] = await outbox("deal.created")
    assert created["deal_id"] == deal["id"]
    assert created["lead_id"] == str(lead_id)
    assert len(await outbox("pipeline.created")) == 1
    history = await admin_db.fetch("SELECT * FROM deals.deal_stage_history WHERE deal_id = $1", uuid.UUID(deal["id"]))
    assert [h["from_stage_id"] for h in history] == [None]


async def test_the_closer_a_rep_sees_the_deal_and_without_a_closer_the_hunter_owns_it(deliver, stack, workspace):
    closer, hunter = uuid.uuid4(), uuid.uuid4()

    await deliver(
        qualified(workspace, uuid.uuid4(), closer_id=closer),
        qualified(workspace, uuid.uuid4(), closer_id=None, owner_id=hunter, company=None, custom={"region": "EMEA"}),
    )

    async with stack.client("deals", token_for(workspace, Role.rep, closer)) as rep:
        [deal] = (await rep.get("/v1/deals")).json()["items"]
        assert deal["owner_id"] == str(closer)
    async with stack.client("deals", token_for(workspace, Role.rep, hunter)) as rep:
        [deal] = (await rep.get("/v1/deals")).json()["items"]
        assert deal["title"] == "Ann Lee"
        assert deal["region"] == "EMEA"


async def test_a_redelivered_event_or_a_second_qualification_opens_no_second_deal(deliver, deals, workspace, outbox):
    lead_id = uuid.uuid4()
    first = qualified(workspace, lead_id)

    await deliver(first)
    await deliver(first)  # redelivered: the inbox knows its id
    await deliver(qualified(workspace, lead_id, qualification=QualificationV1()))  # qualified again after nurturing

    [deal] = (await deals.get("/v1/deals")).json()["items"]
    assert deal["amount"] == {"amount": "15000.00", "currency": "EUR"}
    assert len(await outbox("deal.created")) == 1


async def test_a_lead_without_a_budget_opens_a_deal_without_an_amount(deliver, deals, workspace):
    await deliver(qualified(workspace, uuid.uuid4(), qualification=QualificationV1()))

    [deal] = (await deals.get("/v1/deals")).json()["items"]
    assert deal["amount"] is None
    assert deal["products"] == []


async def test_qualifying_a_lead_in_the_leads_service_opens_its_deal(stack, deals, admin_token):
    """The whole way: POST .../qualify commits lead.qualified, the leads dispatcher delivers it here."""
    await stack.start("leads")
    async with stack.client("leads", admin_token) as leads:
        lead = (await leads.post("/v1/leads", json={"name": "Ivan Petrov", "company": "Northwind"})).json()
        qualify = await leads.post(f"/v1/leads/{lead['id']}/qualify", json={
            "budget": {"amount": "5000", "currency": "EUR"}, "need": "Lost leads", "products": ["crm"],
        })
        assert qualify.status_code == 200, qualify.text

    for _ in range(100):
        items = (await deals.get("/v1/deals")).json()["items"]
        if items:
            break
        await asyncio.sleep(0.1)
    [deal] = items
    assert deal["lead_id"] == lead["id"]
    assert deal["title"] == "Northwind"
    assert deal["amount"] == {"amount": "5000.00", "currency": "EUR"}
    assert deal["products"] == ["crm"]
