"""Hand-offs driven by other services' events, delivered through the leads service's inbox: a won deal hands the
client to a farmer, and a missed first-contact deadline hands the lead to the next hunter."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
import pytest

from services.common.db import Database
from services.common.outbox import cloud_event
from services.common.testing import deliver_events
from services.contracts import DealWonV1, TaskOverdueV1
from services.leads.assignment_worker import AssignmentWorker

pytestmark = pytest.mark.usefixtures("database_url")

ALL_WEEK = {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
ANSWERS = {"budget": {"amount": "100", "currency": "EUR"}, "need": "Calls"}


@pytest.fixture
async def deliver(stack, admin) -> AsyncIterator[Any]:
    """Delivers CloudEvents to the leads service as the dispatcher does: signed, to /events."""
    async with httpx.AsyncClient(base_url=stack.url("leads")) as client:

        async def send(*events: dict) -> None:
            await deliver_events(client, *events)

        yield send


# ---- factories ----------------------------------------------------------------------------------------------


async def created(client: httpx.AsyncClient, path: str, body: dict) -> dict:
    response = await client.post(path, json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def member(client: httpx.AsyncClient, name: str, role: str = "hunter", **fields) -> dict:
    body = {"id": str(uuid.uuid4()), "name": name, "role": role, "working_hours": ALL_WEEK, **fields}
    return await created(client, "/v1/members", body)


async def team(client: httpx.AsyncClient, name: str, role: str, *names: str) -> tuple[dict, list[dict]]:
    """A team of members of one role, in id order (the order round robin takes them in)."""
    made = await created(client, "/v1/teams", {"name": name})
    ids = sorted(str(uuid.uuid4()) for _ in names)
    people = [
        await member(client, who, role, team_id=made["id"], id=member_id)
        for who, member_id in zip(names, ids, strict=True)
    ]
    return made, people


async def rule(client: httpx.AsyncClient, **fields) -> dict:
    return await created(client, "/v1/assignment-rules", {"name": "Rule", **fields})


async def lead(client: httpx.AsyncClient, lead_id: str) -> dict:
    response = await client.get(f"/v1/leads/{lead_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def new_lead(client: httpx.AsyncClient, **fields) -> dict:
    return await created(client, "/v1/leads", {"name": "Ivan", **fields})


async def qualified_lead(client: httpx.AsyncClient, **fields) -> dict:
    made = await new_lead(client, **fields)
    response = await client.post(f"/v1/leads/{made['id']}/qualify", json=ANSWERS)
    assert response.status_code == 200, response.text
    return response.json()["lead"]


async def assignments(client: httpx.AsyncClient, lead_id: str) -> list[dict]:
    response = await client.get(f"/v1/leads/{lead_id}/assignments")
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def events(admin_db, name: str) -> list[dict]:
    rows = await admin_db.fetch("SELECT event FROM leads.outbox WHERE type = $1 ORDER BY seq", f"voronka.{name}.v1")
    return [json.loads(r["event"])["data"] for r in rows]


def deal_won(workspace: uuid.UUID, lead_id: str | None, won_by: uuid.UUID | None = None) -> dict:
    return cloud_event(
        DealWonV1(
            deal_id=uuid.uuid4(), workspace_id=workspace, lead_id=uuid.UUID(lead_id) if lead_id else None,
            pipeline_id=uuid.uuid4(), stage_id=uuid.uuid4(), title="Call centre", won_by=won_by,
            won_at=datetime.now(UTC),
        ),
        workspace_id=workspace, subject=str(uuid.uuid4()),
    )


def task_overdue(
    workspace: uuid.UUID, lead_id: str, assignee_id: str, kind: Literal["first_contact", "follow_up"] = "first_contact"
) -> dict:
    now = datetime.now(UTC)
    return cloud_event(
        TaskOverdueV1(
            task_id=uuid.uuid4(), workspace_id=workspace, kind=kind, task_type="call", title="First call",
            lead_id=uuid.UUID(lead_id), assignee_id=uuid.UUID(assignee_id), due_at=now, overdue_at=now,
        ),
        workspace_id=workspace, subject=str(uuid.uuid4()),
    )


async def drain(db: Database) -> int:
    return await AssignmentWorker(db).drain()


# ---- won deal -> farmer -------------------------------------------------------------------------------------


async def test_won_deals_hand_each_client_to_the_next_farmer(admin, deliver, workspace, admin_db):
    hunter = await member(admin, "Hank")
    closer = await member(admin, "Cora", "closer")
    farmers, [fiona, frank] = await team(admin, "Accounts", "farmer", "Fiona", "Frank")
    # Neither the team's closer nor its hunter looks after clients.
    await member(admin, "Carl", "closer", team_id=farmers["id"])
    await rule(admin, stage="qualified", method="fixed", member_ids=[closer["id"]])
    client_rule = await rule(admin, stage="client", method="round_robin", team_id=farmers["id"])
    first = await qualified_lead(admin, owner_id=hunter["id"])
    second = await qualified_lead(admin, owner_id=hunter["id"])
    assert first["owner_id"] == closer["id"]
    won_by = uuid.uuid4()

    await deliver(deal_won(workspace, first["id"], won_by), deal_won(workspace, second["id"]))

    clients = [await lead(admin, first["id"]), await lead(admin, second["id"])]
    assert [(c["status"], c["owner_id"], c["assignment_state"]) for c in clients] == [
        ("converted", fiona["id"], "assigned"), ("converted", frank["id"], "assigned"),
    ]
    assert clients[0]["hunter_id"] == hunter["id"]  # the hunter stays on record
    record = (await assignments(admin, first["id"]))[-1]
    assert (record["stage"], record["member_id"], record["previous_owner_id"], record["rule_id"]) == (
        "client", fiona["id"], closer["id"], client_rule["id"]
    )
    assert record["reason"] == "round robin in team Accounts: Fiona was next"
    handed = [e for e in await events(admin_db, "lead.assigned") if e["stage"] == "client"]
    assert [(e["lead_id"], e["owner_id"], e["previous_owner_id"]) for e in handed] == [
        (first["id"], fiona["id"], closer["id"]), (second["id"], frank["id"], closer["id"]),
    ]
    converted = [e for e in await events(admin_db, "lead.status_changed") if e["to_status"] == "converted"]
    assert [(e["lead_id"], e["from_status"], e["changed_by"]) for e in converted] == [
        (first["id"], "qualified", str(won_by)), (second["id"], "qualified", str(uuid.UUID(int=0))),
    ]


async def test_another_won_deal_of_the_same_client_keeps_its_farmer(admin, deliver, workspace, admin_db):
    farmers, [fiona, _] = await team(admin, "Accounts", "farmer", "Fiona", "Frank")
    await rule(admin, stage="client", method="round_robin", team_id=farmers["id"])
    hunter = await member(admin, "Hank")
    client = await qualified_lead(admin, owner_id=hunter["id"])
    await deliver(deal_won(workspace, client["id"]))
    assert (await lead(admin, client["id"]))["owner_id"] == fiona["id"]
    before = await lead(admin, client["id"])

    await deliver(deal_won(workspace, client["id"]))

    after = await lead(admin, client["id"])
    assert (after["owner_id"], after["version"]) == (fiona["id"], before["version"])
    assert [a["member_id"] for a in await assignments(admin, client["id"])] == [fiona["id"]]
    assert len([e for e in await events(admin_db, "lead.assigned") if e["stage"] == "client"]) == 1


async def test_a_won_deal_without_a_lead_or_for_an_unknown_lead_changes_nothing(admin, deliver, workspace, admin_db):
    farmer = await member(admin, "Fiona", "farmer")
    await rule(admin, stage="client", method="fixed", member_ids=[farmer["id"]])
    hunter = await member(admin, "Hank")
    ours = await qualified_lead(admin, owner_id=hunter["id"])
    elsewhere = uuid.uuid4()

    await deliver(
        deal_won(workspace, None), deal_won(workspace, str(uuid.uuid4())),
        # Our lead's id, but from another workspace: not theirs to convert.
        deal_won(elsewhere, ours["id"]),
    )

    unchanged = await lead(admin, ours["id"])
    assert (unchanged["status"], unchanged["owner_id"], unchanged["version"]) == (
        "qualified", hunter["id"], ours["version"]
    )
    assert await events(admin_db, "lead.assigned") == []
    assert [e["to_status"] for e in await events(admin_db, "lead.status_changed")] == ["qualified"]


async def test_a_won_deal_for_a_lead_that_cannot_be_converted_leaves_it_as_it_is(admin, deliver, workspace, admin_db):
    farmer = await member(admin, "Fiona", "farmer")
    await rule(admin, stage="client", method="fixed", member_ids=[farmer["id"]])
    hunter = await member(admin, "Hank")
    working = await new_lead(admin, owner_id=hunter["id"])
    moved = await admin.post(f"/v1/leads/{working['id']}/status", json={"status": "working"})
    assert moved.status_code == 200, moved.text

    await deliver(deal_won(workspace, working["id"]))

    unchanged = await lead(admin, working["id"])
    assert (unchanged["status"], unchanged["owner_id"]) == ("working", hunter["id"])
    assert await events(admin_db, "lead.assigned") == []


async def test_a_client_no_farmer_can_take_waits_with_its_closer_and_goes_to_the_first_free(
    admin, deliver, workspace, leads_db, admin_db
):
    closer = await member(admin, "Cora", "closer")
    # Fiona looks after one client already, her whole capacity; Frank is away.
    fiona = await member(admin, "Fiona", "farmer", capacity=1)
    frank = await member(admin, "Frank", "farmer", status="away")
    await rule(admin, stage="qualified", method="fixed", member_ids=[closer["id"]])
    made = await rule(admin, stage="client", method="least_loaded", member_ids=[fiona["id"], frank["id"]])
    old_client = await qualified_lead(admin)
    moved = await admin.patch(f"/v1/leads/{old_client['id']}", json={"owner_id": fiona["id"]})
    assert moved.status_code == 200, moved.text
    await deliver(deal_won(workspace, old_client["id"]))
    assert (await lead(admin, old_client["id"]))["owner_id"] == fiona["id"]  # handed to her by hand already
    waiting = await qualified_lead(admin)

    await deliver(deal_won(workspace, waiting["id"]))

    queued = await lead(admin, waiting["id"])
    assert (queued["status"], queued["owner_id"], queued["assignment_state"], queued["assignment_rule_id"]) == (
        "converted", closer["id"], "queued", made["id"]
    )
    [record] = [a for a in await assignments(admin, waiting["id"]) if a["stage"] == "client"]
    assert record["member_id"] is None
    assert [(s["member_id"], s["why"]) for s in record["skipped"]] == [
        (fiona["id"], "at capacity (1 of 1 clients)"), (frank["id"], "away"),
    ]
    # Tried again, the client keeps waiting (it is not settled like other closed leads) until a farmer is free.
    assert await drain(leads_db) == 1
    still = await lead(admin, waiting["id"])
    assert (still["owner_id"], still["assignment_state"]) == (closer["id"], "queued")
    assert len(await assignments(admin, waiting["id"])) == 2

    back = await admin.patch(f"/v1/members/{frank['id']}", json={"status": "active"})
    assert back.status_code == 200, back.text
    await drain(leads_db)

    handed = await lead(admin, waiting["id"])
    assert (handed["owner_id"], handed["assignment_state"]) == (frank["id"], "assigned")
    last = (await events(admin_db, "lead.assigned"))[-1]
    assert (last["stage"], last["owner_id"], last["previous_owner_id"]) == ("client", frank["id"], closer["id"])
    assert last["reason"] == (
        "least loaded in the rule's members: Frank had the fewest clients (0 of no limit); "
        "Fiona skipped: at capacity (1 of 1 clients)"
    )


async def test_a_won_client_no_client_rule_matches_stays_with_its_closer(admin, deliver, workspace, admin_db):
    closer = await member(admin, "Cora", "closer")
    farmer = await member(admin, "Fiona", "farmer")
    await rule(admin, stage="qualified", method="fixed", member_ids=[closer["id"]])
    await rule(admin, stage="client", method="fixed", member_ids=[farmer["id"]], conditions={"channels": ["partner"]})
    client = await qualified_lead(admin, channel="ads")

    await deliver(deal_won(workspace, client["id"]))

    kept = await lead(admin, client["id"])
    assert (kept["status"], kept["owner_id"], kept["assignment_state"]) == ("converted", closer["id"], "assigned")
    assert [e["stage"] for e in await events(admin_db, "lead.assigned")] == ["qualified"]


# ---- missed first contact -> the next hunter ----------------------------------------------------------------


async def test_a_missed_first_contact_hands_the_lead_to_the_next_hunter(
    admin, deliver, workspace, leads_db, admin_db
):
    inbound, [anna, boris, carl] = await team(admin, "Inbound", "hunter", "Anna", "Boris", "Carl")
    made = await rule(admin, stage="new", method="round_robin", team_id=inbound["id"])
    taken = [await new_lead(admin, name=f"Lead {i}") for i in range(3)]
    await drain(leads_db)
    assert [(await lead(admin, t["id"]))["owner_id"] for t in taken] == [anna["id"], boris["id"], carl["id"]]
    missed = task_overdue(workspace, taken[0]["id"], anna["id"])

    await deliver(missed)

    # Anna's turn was next, but she is the one who missed the deadline: Boris gets the lead.
    reassigned = await lead(admin, taken[0]["id"])
    assert (reassigned["owner_id"], reassigned["status"], reassigned["assignment_state"]) == (
        boris["id"], "new", "assigned"
    )
    record = (await assignments(admin, taken[0]["id"]))[-1]
    assert (record["member_id"], record["previous_owner_id"], record["rule_id"]) == (
        boris["id"], anna["id"], made["id"]
    )
    assert record["reason"] == (
        "Anna missed the first-contact deadline; round robin in team Inbound: Boris was next"
    )
    assert record["skipped"] == [{"member_id": anna["id"], "why": "missed the first-contact deadline"}]
    announced = (await events(admin_db, "lead.assigned"))[-1]
    assert (announced["owner_id"], announced["previous_owner_id"], announced["missed_by"], announced["stage"]) == (
        boris["id"], anna["id"], anna["id"], "new"
    )

    # The same event delivered again is applied once.
    await deliver(missed)
    assert len(await assignments(admin, taken[0]["id"])) == 2
    assert len(await events(admin_db, "lead.assigned")) == 4


async def test_a_stale_overdue_first_contact_changes_nothing(admin, deliver, workspace, leads_db, admin_db):
    inbound, [anna, boris] = await team(admin, "Inbound", "hunter", "Anna", "Boris")
    await rule(admin, stage="new", method="round_robin", team_id=inbound["id"])
    worked, handed, other_task = [await new_lead(admin, name=name) for name in ("Worked", "Handed", "Other")]
    await drain(leads_db)
    owners = {t["id"]: (await lead(admin, t["id"]))["owner_id"] for t in (worked, handed, other_task)}
    assert list(owners.values()) == [anna["id"], boris["id"], anna["id"]]
    # Anna called the first lead in time; the second went to someone else by hand meanwhile.
    called = await admin.post(f"/v1/leads/{worked['id']}/status", json={"status": "working"})
    assert called.status_code == 200, called.text
    by_hand = await admin.patch(f"/v1/leads/{handed['id']}", json={"owner_id": anna["id"]})
    assert by_hand.status_code == 200, by_hand.text
    before = {t["id"]: await lead(admin, t["id"]) for t in (worked, handed, other_task)}
    published = len(await events(admin_db, "lead.assigned"))

    await deliver(
        task_overdue(workspace, worked["id"], owners[worked["id"]]),
        task_overdue(workspace, handed["id"], owners[handed["id"]]),
        # Not a first-contact task: a follow-up overdue is the tasks service's business.
        task_overdue(workspace, other_task["id"], owners[other_task["id"]], kind="follow_up"),
    )

    after = {t["id"]: await lead(admin, t["id"]) for t in (worked, handed, other_task)}
    assert after == before
    assert len(await events(admin_db, "lead.assigned")) == published


async def test_when_nobody_else_can_take_the_lead_its_owner_keeps_it_and_the_record_says_so(
    admin, deliver, workspace, leads_db, admin_db
):
    anna = await member(admin, "Anna")
    boris = await member(admin, "Boris", status="away")
    made = await rule(admin, stage="new", method="round_robin", member_ids=[anna["id"], boris["id"]])
    taken = await new_lead(admin)
    await drain(leads_db)
    assert (await lead(admin, taken["id"]))["owner_id"] == anna["id"]

    await deliver(task_overdue(workspace, taken["id"], anna["id"]))

    kept = await lead(admin, taken["id"])
    assert (kept["owner_id"], kept["assignment_state"], kept["version"]) == (anna["id"], "assigned", 2)
    record = (await assignments(admin, taken["id"]))[-1]
    assert (record["member_id"], record["previous_owner_id"], record["rule_id"]) == (
        anna["id"], anna["id"], made["id"]
    )
    assert record["reason"] == (
        "Anna missed the first-contact deadline, and nobody else can take the lead now (round robin in the rule's "
        "members): Anna keeps it; Boris skipped: away"
    )
    assert [s["member_id"] for s in record["skipped"]] == [anna["id"], boris["id"]]
    # Nobody's lead changed hands: nothing to announce (the tasks service tells the head of sales).
    assert len(await events(admin_db, "lead.assigned")) == 1
