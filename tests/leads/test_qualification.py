"""Qualification (BANT): answers saved piece by piece, the workspace's required answers, and qualify — the
hunter -> closer hand-off that moves the lead to qualified and publishes lead.qualified."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from services.common.auth import Role
from services.common.testing import token_for

pytestmark = pytest.mark.usefixtures("database_url")

ANSWERS = {
    "budget": {"amount": "15000", "currency": "usd"},
    "budget_confirmed": True,
    "decision_maker": "  Olga   Ivanova, CFO ",
    "is_decision_maker": False,
    "need": "Their reps lose leads in spreadsheets",
    "products": ["crm", "voip", "crm"],
    "timeline": "2027-01-31",
    "notes": "Call back after the board meeting",
}


async def new_lead(client: httpx.AsyncClient, **fields) -> dict:
    response = await client.post("/v1/leads", json={"name": "Ivan Petrov", **fields})
    assert response.status_code == 201, response.text
    return response.json()


async def events(admin_db, name: str) -> list[dict]:
    rows = await admin_db.fetch("SELECT event FROM leads.outbox WHERE type = $1 ORDER BY seq", f"voronka.{name}.v1")
    return [json.loads(r["event"]) for r in rows]


def problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return response.json()


def fields_named(response: httpx.Response) -> list[tuple[str, str]]:
    return [(e["field"], e["code"]) for e in problem(response, 422)["errors"]]


@pytest.fixture
async def as_admin(stack, workspace):
    """The leads service as an admin of the workspace whose user id is `.user_id`."""
    await stack.start("leads")
    user_id = uuid.uuid4()
    async with stack.client("leads", token_for(workspace, Role.admin, user_id)) as client:
        client.user_id = user_id
        yield client


async def test_answers_are_saved_piece_by_piece_and_read_back(as_admin):
    lead = await new_lead(as_admin)
    url = f"/v1/leads/{lead['id']}/qualification"

    nothing = await as_admin.get(url)
    assert nothing.status_code == 200
    assert nothing.headers["etag"] == '"0"'
    assert nothing.json() == {
        "lead_id": lead["id"], "budget": None, "budget_confirmed": False, "decision_maker": None,
        "is_decision_maker": False, "need": None, "products": [], "timeline": None, "notes": None,
        "updated_by": None, "updated_at": None, "version": 0,
    }

    budget = await as_admin.patch(url, json={"budget": ANSWERS["budget"]}, headers={"If-Match": '"0"'})
    assert budget.status_code == 200, budget.text
    assert budget.headers["etag"] == '"1"'
    assert budget.json()["budget"] == {"amount": "15000.00", "currency": "USD"}
    assert budget.json()["updated_by"] == str(as_admin.user_id)

    need = await as_admin.patch(url, json={"need": "Lost leads", "products": ["crm", "voip", "crm"]})
    assert need.json()["version"] == 2
    authority = await as_admin.patch(url, json={"decision_maker": "  Olga   Ivanova, CFO "})
    saved = (await as_admin.get(url)).json()
    assert authority.json() == saved
    assert saved["budget"] == {"amount": "15000.00", "currency": "USD"}
    assert saved["need"] == "Lost leads"
    assert saved["products"] == ["crm", "voip"]
    assert saved["decision_maker"] == "Olga Ivanova, CFO"
    assert saved["version"] == 3

    # The same answers again change nothing; a stale ETag changes nothing either.
    same = await as_admin.patch(url, json={"need": "Lost leads", "budget": {"amount": "15000.00", "currency": "USD"}})
    assert same.json()["version"] == 3
    problem(await as_admin.patch(url, json={"notes": "late"}, headers={"If-Match": '"1"'}), 412)
    cleared = await as_admin.patch(url, json={"decision_maker": None, "budget": None, "timeline": "2027-01-31"})
    assert cleared.json()["decision_maker"] is None
    assert cleared.json()["budget"] is None
    assert cleared.json()["timeline"] == "2027-01-31"
    assert cleared.json()["need"] == "Lost leads"
    # Answers are not the lead: the lead's version is untouched.
    assert (await as_admin.get(f"/v1/leads/{lead['id']}")).json()["version"] == lead["version"]


async def test_qualify_is_refused_naming_each_missing_required_answer(as_admin, admin_db):
    lead = await new_lead(as_admin)
    url = f"/v1/leads/{lead['id']}/qualify"

    # By default a workspace requires the budget and the need.
    assert fields_named(await as_admin.post(url, json={})) == [
        ("qualification.budget", "required"), ("qualification.need", "required"),
    ]
    assert (await as_admin.patch("/v1/lead-settings", json={
        "qualification_required": ["budget", "authority", "need", "timeline"],
    })).status_code == 200
    refused = await as_admin.post(url, json={"budget": ANSWERS["budget"], "is_decision_maker": False})
    assert fields_named(refused) == [
        ("qualification.authority", "required"), ("qualification.need", "required"),
        ("qualification.timeline", "required"),
    ]
    assert "who decides" in refused.json()["errors"][0]["message"]
    # A refused qualify saved nothing, and the lead did not move.
    assert (await as_admin.get(f"/v1/leads/{lead['id']}/qualification")).json()["version"] == 0
    assert (await as_admin.get(f"/v1/leads/{lead['id']}")).json()["status"] == "new"
    assert await events(admin_db, "lead.qualified") == []
    assert await events(admin_db, "lead.status_changed") == []


async def test_the_workspace_decides_which_answers_are_required(as_admin):
    settings = (await as_admin.get("/v1/lead-settings")).json()
    assert settings["qualification_required"] == ["budget", "need"]
    changed = await as_admin.patch("/v1/lead-settings", json={"qualification_required": ["authority"]})
    assert changed.json()["qualification_required"] == ["authority"]

    # Authority is answered by naming who decides, or by saying our contact decides.
    named, ours, unknown = [await new_lead(as_admin, name=n) for n in ("A", "B", "C")]
    assert (await as_admin.post(f"/v1/leads/{named['id']}/qualify", json={"decision_maker": "Olga, CFO"})).json()[
        "lead"]["status"] == "qualified"
    assert (await as_admin.post(f"/v1/leads/{ours['id']}/qualify", json={"is_decision_maker": True})).status_code == 200
    assert fields_named(await as_admin.post(f"/v1/leads/{unknown['id']}/qualify", json={"budget_confirmed": True})) \
        == [("qualification.authority", "required")]

    # Nothing required: a lead may be qualified on the rep's word alone.
    await as_admin.patch("/v1/lead-settings", json={"qualification_required": []})
    assert (await as_admin.post(f"/v1/leads/{unknown['id']}/qualify", json={})).status_code == 200


async def test_the_required_answers_setting_is_checked_and_only_an_admin_changes_it(as_admin, stack, workspace):
    unknown = await as_admin.patch("/v1/lead-settings", json={"qualification_required": ["budget", "bribe"]})
    assert [field for field, _ in fields_named(unknown)] == ["qualification_required[1]"]
    twice = await as_admin.patch("/v1/lead-settings", json={"qualification_required": ["need", "need"]})
    assert fields_named(twice) == [("qualification_required[1]", "duplicate")]
    assert fields_named(await as_admin.patch("/v1/lead-settings", json={"qualification_required": None})) == [
        ("qualification_required", "null"),
    ]
    async with stack.client("leads", token_for(workspace, Role.head_of_sales)) as head:
        problem(await head.patch("/v1/lead-settings", json={"qualification_required": ["need"]}), 403)
        assert (await head.get("/v1/lead-settings")).json()["qualification_required"] == ["budget", "need"]


async def test_qualifying_hands_the_lead_to_a_closer_with_history_and_both_events(as_admin, admin_db):
    hunter = uuid.uuid4()
    lead = await new_lead(
        as_admin, email="Ivan@Example.com", phone="+7 916 123 45 67", company="Acme", position="CTO",
        tags=["expo"], source="Spring webinar", channel="web_form",
        utm={"source": "google", "medium": "cpc", "campaign": "spring"}, owner_id=str(hunter),
    )
    url = f"/v1/leads/{lead['id']}"
    assert (await as_admin.patch(f"{url}/qualification", json={"budget": ANSWERS["budget"]})).status_code == 200
    assert (await as_admin.post(f"{url}/status", json={"status": "working"})).status_code == 200

    response = await as_admin.post(f"{url}/qualify", json={
        **{k: v for k, v in ANSWERS.items() if k != "budget"}, "comment": "Ready for a demo",
    })

    assert response.status_code == 200, response.text
    answer = response.json()
    qualified = answer["lead"]
    assert qualified["status"] == "qualified"
    assert response.headers["etag"] == f'"{qualified["version"]}"'
    expected_answers = {
        "budget": {"amount": "15000.00", "currency": "USD"}, "budget_confirmed": True,
        "decision_maker": "Olga Ivanova, CFO", "is_decision_maker": False,
        "need": "Their reps lose leads in spreadsheets", "products": ["crm", "voip"], "timeline": "2027-01-31",
        "notes": "Call back after the board meeting",
    }
    assert {k: answer["qualification"][k] for k in expected_answers} == expected_answers
    assert (await as_admin.get(f"{url}/qualification")).json() == answer["qualification"]

    history = (await as_admin.get(f"{url}/history")).json()["status_changes"]
    assert [(c["from_status"], c["to_status"], c["comment"]) for c in history] == [
        ("new", "working", None), ("working", "qualified", "Ready for a demo"),
    ]
    changed = [e["data"] for e in await events(admin_db, "lead.status_changed")]
    assert [(e["from_status"], e["to_status"]) for e in changed] == [("new", "working"), ("working", "qualified")]
    [event] = await events(admin_db, "lead.qualified")
    assert event["type"] == "voronka.lead.qualified.v1"
    assert event["subject"] == lead["id"]
    assert event["data"] == {
        "lead_id": lead["id"], "workspace_id": lead["workspace_id"], "name": "Ivan Petrov",
        "email": "ivan@example.com", "phone": "+79161234567", "company": "Acme", "position": "CTO",
        "source": "Spring webinar", "source_id": None, "channel": "web_form",
        "utm": {"source": "google", "medium": "cpc", "campaign": "spring"}, "tags": ["expo"], "custom": {},
        "owner_id": str(hunter), "closer_id": None, "qualification": expected_answers,
        "comment": "Ready for a demo", "qualified_by": str(as_admin.user_id),
        "qualified_at": qualified["status_changed_at"],
    }

    # Qualified is not a move a qualified lead can make again.
    assert "allowed next" in problem(await as_admin.post(f"{url}/qualify", json={}), 409)["detail"]


@pytest.mark.parametrize(("path", "status"), [
    (("qualified", "converted"), "converted"),
    ((), "disqualified"),
])
async def test_qualify_from_a_final_or_closed_status_is_409(as_admin, admin_db, path, status):
    lead = await new_lead(as_admin)
    url = f"/v1/leads/{lead['id']}"
    body = {"budget": ANSWERS["budget"], "need": "CRM"}
    for step in path:
        # Qualifying is /qualify's alone (/status refuses it); the other moves are /status's.
        moved = await as_admin.post(f"{url}/qualify", json=body) if step == "qualified" else await as_admin.post(
            f"{url}/status", json={"status": step}
        )
        assert moved.status_code == 200, moved.text
    if status == "disqualified":
        await as_admin.post(f"{url}/status", json={"status": "disqualified", "reason": "no_budget"})
    handed_off = await events(admin_db, "lead.qualified")
    refused = problem(await as_admin.post(f"{url}/qualify", json=body), 409)
    assert "allowed next" in refused["detail"]
    assert await events(admin_db, "lead.qualified") == handed_off  # nothing more was published
    saving = await as_admin.patch(f"{url}/qualification", json={"need": "CRM"})
    if status == "converted":
        # A converted lead's answers are the deal's history now.
        assert "can no longer change" in problem(saving, 409)["detail"]
    else:
        assert saving.status_code == 200  # a disqualified lead may be reopened: its answers can still be kept


async def test_a_merged_leads_answers_are_final(as_admin):
    survivor, other = await new_lead(as_admin, name="A"), await new_lead(as_admin, name="B")
    assert (await as_admin.post(f"/v1/leads/{survivor['id']}/merge", json={"other_lead_id": other["id"]})).status_code \
        == 200
    saving = await as_admin.patch(f"/v1/leads/{other['id']}/qualification", json={"need": "CRM"})
    assert survivor["id"] in problem(saving, 409)["detail"]


async def test_a_rep_cannot_see_or_qualify_another_reps_lead(stack, workspace, admin_db):
    await stack.start("leads")
    anna, boris = uuid.uuid4(), uuid.uuid4()
    async with stack.client("leads", token_for(workspace, Role.rep, anna)) as as_anna, \
            stack.client("leads", token_for(workspace, Role.rep, boris)) as as_boris:
        lead = await new_lead(as_anna)
        url = f"/v1/leads/{lead['id']}"
        problem(await as_boris.get(f"{url}/qualification"), 404)
        problem(await as_boris.patch(f"{url}/qualification", json={"need": "CRM"}), 404)
        problem(await as_boris.post(f"{url}/qualify", json={"need": "CRM", "budget": ANSWERS["budget"]}), 404)
        assert (await as_anna.get(f"{url}/qualification")).json()["version"] == 0

        mine = await as_anna.post(f"{url}/qualify", json={"need": "CRM", "budget": ANSWERS["budget"]})
        assert mine.status_code == 200, mine.text
    [event] = [e["data"] for e in await events(admin_db, "lead.qualified")]
    assert event["owner_id"] == str(anna)
    assert event["qualified_by"] == str(anna)


async def test_a_float_amount_or_an_unknown_currency_is_422_naming_the_field(as_admin):
    lead = await new_lead(as_admin)
    url = f"/v1/leads/{lead['id']}"
    cases = [
        ({"amount": 15000.5, "currency": "USD"}, "budget.amount", "float_amount"),
        ({"amount": "100", "currency": "XYZ"}, "budget.currency", "unknown_currency"),
        ({"amount": "10.5", "currency": "JPY"}, "budget.amount", "decimal_places"),
        ({"amount": "-1", "currency": "USD"}, "budget.amount", "negative_amount"),
    ]
    for budget, field, code in cases:
        for response in (
            await as_admin.patch(f"{url}/qualification", json={"budget": budget}),
            await as_admin.post(f"{url}/qualify", json={"budget": budget, "need": "CRM"}),
        ):
            assert fields_named(response) == [(field, code)]
    float_message = (await as_admin.patch(f"{url}/qualification", json={"budget": {"amount": 1.5, "currency": "EUR"}}))
    assert "string" in float_message.json()["errors"][0]["message"]
    assert (await as_admin.get(f"{url}/qualification")).json()["version"] == 0


async def test_another_workspace_sees_neither_the_answers_nor_the_settings(as_admin, stack):
    lead = await new_lead(as_admin)
    await as_admin.patch(f"/v1/leads/{lead['id']}/qualification", json={"need": "CRM"})
    await as_admin.patch("/v1/lead-settings", json={"qualification_required": ["need"]})
    async with stack.client("leads", token_for(uuid.uuid4(), Role.admin)) as stranger:
        url = f"/v1/leads/{lead['id']}"
        problem(await stranger.get(f"{url}/qualification"), 404)
        problem(await stranger.patch(f"{url}/qualification", json={"need": "Mine now"}), 404)
        problem(await stranger.post(f"{url}/qualify", json={}), 404)
        assert (await stranger.get("/v1/lead-settings")).json()["qualification_required"] == ["budget", "need"]
        # Its own lead with the same need is refused by its own (default) rules.
        theirs = await new_lead(stranger)
        assert fields_named(await stranger.post(f"/v1/leads/{theirs['id']}/qualify", json={"need": "CRM"})) == [
            ("qualification.budget", "required"),
        ]
    assert (await as_admin.get(f"/v1/leads/{lead['id']}/qualification")).json()["need"] == "CRM"
    assert (await as_admin.post(f"/v1/leads/{lead['id']}/qualify", json={})).status_code == 200


async def test_a_retried_qualify_with_the_same_key_hands_over_once(as_admin, admin_db):
    lead = await new_lead(as_admin)
    url = f"/v1/leads/{lead['id']}/qualify"
    body = {"budget": ANSWERS["budget"], "need": "CRM"}
    first = await as_admin.post(url, json=body, headers={"Idempotency-Key": "handoff-1"})
    again = await as_admin.post(url, json=body, headers={"Idempotency-Key": "handoff-1"})
    assert first.status_code == again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert len(await events(admin_db, "lead.qualified")) == 1
