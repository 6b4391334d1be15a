"""A lead's life: status moves with their history, edits with optimistic concurrency, hand merges."""

from __future__ import annotations

import json
import uuid

import pytest

from services.common.auth import Role
from services.common.testing import token_for

pytestmark = pytest.mark.usefixtures("database_url")


async def new_lead(leads, **fields) -> dict:
    response = await leads.post("/v1/leads", json={"name": "Ivan Petrov", **fields})
    assert response.status_code == 201, response.text
    return response.json()


async def events(admin_db, name: str) -> list[dict]:
    rows = await admin_db.fetch("SELECT event FROM leads.outbox WHERE type = $1 ORDER BY seq", f"voronka.{name}.v1")
    return [json.loads(r["event"])["data"] for r in rows]


# The answers a new workspace requires to qualify (budget and need).
ANSWERS = {"budget": {"amount": "12000", "currency": "EUR"}, "need": "A CRM for ten reps"}


async def move(leads, lead_id: str, status: str):
    """A status move as a rep makes it: qualifying goes through /qualify with the required answers."""
    if status == "qualified":
        return await leads.post(f"/v1/leads/{lead_id}/qualify", json=ANSWERS)
    return await leads.post(f"/v1/leads/{lead_id}/status", json={"status": status})


async def test_a_lead_moves_through_its_lifecycle_and_each_move_is_recorded(leads, admin_db):
    lead = await new_lead(leads)
    for status in ("working", "nurturing", "qualified", "converted"):
        response = await move(leads, lead["id"], status)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer.get("lead", answer)["status"] == status  # /qualify answers with the lead and its answers

    history = (await leads.get(f"/v1/leads/{lead['id']}/history")).json()
    assert [(c["from_status"], c["to_status"]) for c in history["status_changes"]] == [
        ("new", "working"), ("working", "nurturing"), ("nurturing", "qualified"), ("qualified", "converted"),
    ]
    published = await events(admin_db, "lead.status_changed")
    assert [(e["from_status"], e["to_status"]) for e in published] == [
        ("new", "working"), ("working", "nurturing"), ("nurturing", "qualified"), ("qualified", "converted"),
    ]


@pytest.mark.parametrize(("path", "illegal"), [
    ((), "converted"),  # new cannot jump to converted
    (("working", "qualified", "converted"), "working"),  # converted is final
    ((), "merged"),  # only a hand merge makes a lead merged
])
async def test_an_illegal_move_is_409_and_says_what_is_allowed(leads, path, illegal):
    lead = await new_lead(leads)
    for status in path:
        assert (await move(leads, lead["id"], status)).status_code == 200
    response = await leads.post(f"/v1/leads/{lead['id']}/status", json={"status": illegal})
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert "allowed next" in response.json()["detail"]


async def test_status_does_not_qualify_a_lead_it_points_to_qualify(leads, admin_db):
    lead = await new_lead(leads)
    response = await leads.post(f"/v1/leads/{lead['id']}/status", json={"status": "qualified"})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert (error["field"], error["code"]) == ("status", "use_qualify")
    assert f"/v1/leads/{lead['id']}/qualify" in error["message"]
    assert (await leads.get(f"/v1/leads/{lead['id']}")).json()["status"] == "new"
    assert await events(admin_db, "lead.status_changed") == []


async def test_disqualifying_needs_a_reason_from_the_workspace_list(leads):
    lead = await new_lead(leads)
    url = f"/v1/leads/{lead['id']}/status"
    missing = await leads.post(url, json={"status": "disqualified"})
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "reason"
    unknown = await leads.post(url, json={"status": "disqualified", "reason": "too_tall"})
    assert unknown.status_code == 422
    assert "no_budget" in unknown.json()["errors"][0]["message"]

    await leads.patch("/v1/lead-settings", json={"disqualification_reasons": ["no_budget", "too_tall"]})
    ok = await leads.post(url, json={"status": "disqualified", "reason": "too_tall", "comment": "2 m"})
    assert ok.status_code == 200
    assert ok.json()["disqualification_reason"] == "too_tall"
    reopened = await leads.post(url, json={"status": "working"})
    assert reopened.json()["disqualification_reason"] is None


async def test_patch_with_a_stale_etag_is_412_and_changes_nothing(leads):
    lead = await new_lead(leads, company="Acme")
    url = f"/v1/leads/{lead['id']}"
    first = await leads.patch(url, json={"company": "Acme Corp"}, headers={"If-Match": '"1"'})
    assert first.status_code == 200
    assert first.headers["etag"] == '"2"'
    stale = await leads.patch(url, json={"company": "Acme Ltd"}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.headers["content-type"] == "application/problem+json"
    assert (await leads.get(url)).json()["company"] == "Acme Corp"


async def test_patch_normalizes_clears_and_merges_custom_fields(leads, admin_db):
    await leads.patch("/v1/lead-settings", json={
        "default_region": "RU",
        "custom_fields": [
            {"key": "budget", "label": "Budget", "type": "number", "required": False},
            {"key": "industry", "label": "Industry", "type": "select", "required": False,
             "options": ["retail", "logistics"]},
        ],
    })
    lead = await new_lead(leads, notes="call after 5", custom={"budget": 1000})
    url = f"/v1/leads/{lead['id']}"
    response = await leads.patch(url, json={
        "phone": "8 916 123 45 67", "notes": None, "tags": ["vip", " VIP ", "expo"], "custom": {"industry": "retail"},
    })
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["phone"] == "+79161234567"
    assert updated["notes"] is None
    assert updated["tags"] == ["vip", "expo"]
    assert updated["custom"] == {"budget": 1000, "industry": "retail"}
    [event] = await events(admin_db, "lead.updated")
    assert event["changed"] == ["custom", "notes", "phone", "tags"]

    bad = await leads.patch(url, json={"custom": {"industry": "mining", "colour": "red"}, "phone": "12"})
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"custom.industry", "custom.colour", "phone"}
    assert (await leads.patch(url, json={"email": "nope"})).json()["errors"][0]["field"] == "email"


async def test_an_email_another_lead_has_cannot_be_patched_in(leads):
    await new_lead(leads, email="taken@example.com")
    other = await new_lead(leads, email="mine@example.com")
    response = await leads.patch(f"/v1/leads/{other['id']}", json={"email": "Taken@example.com"})
    assert response.status_code == 409
    assert response.json()["errors"][0]["field"] == "email"
    # Its old address is still its own, and the freed one can be taken after a change.
    moved = await leads.patch(f"/v1/leads/{other['id']}", json={"email": "new@example.com"})
    assert moved.status_code == 200
    again = await leads.post("/v1/leads", json={"email": "mine@example.com"})
    assert again.status_code == 201


async def test_a_rep_cannot_hand_a_lead_to_someone_else_but_a_head_of_sales_can(stack, workspace):
    await stack.start("leads")
    rep, colleague = uuid.uuid4(), uuid.uuid4()
    async with stack.client("leads", token_for(workspace, Role.rep, rep)) as as_rep, \
            stack.client("leads", token_for(workspace, Role.head_of_sales)) as as_head:
        lead = await new_lead(as_rep)
        assert lead["owner_id"] == str(rep)
        refused = await as_rep.patch(f"/v1/leads/{lead['id']}", json={"owner_id": str(colleague)})
        assert refused.status_code == 403
        handed = await as_head.patch(f"/v1/leads/{lead['id']}", json={"owner_id": str(colleague)})
        assert handed.status_code == 200
        assert handed.json()["owner_id"] == str(colleague)
        # Now it is the colleague's: the rep no longer sees it.
        assert (await as_rep.get(f"/v1/leads/{lead['id']}")).status_code == 404


async def test_merging_by_hand_keeps_an_audit_and_folds_in_the_other(leads, admin_db):
    older = await new_lead(leads, email="ivan@example.com", source="Expo", channel="event", tags=["expo"])
    survivor = await new_lead(leads, name="Ivan P.", phone="+7 916 123 45 67", company="Acme", tags=["vip"])

    response = await leads.post(f"/v1/leads/{survivor['id']}/merge", json={"other_lead_id": older["id"]})

    assert response.status_code == 200, response.text
    merged = response.json()
    assert merged["email"] == "ivan@example.com"
    assert merged["phone"] == "+79161234567"
    assert merged["tags"] == ["vip", "expo"]
    assert merged["source"] == "Expo"
    assert merged["channel"] == "event"
    folded = (await leads.get(f"/v1/leads/{older['id']}")).json()
    assert folded["status"] == "merged"
    assert folded["merged_into_id"] == survivor["id"]
    history = (await leads.get(f"/v1/leads/{survivor['id']}/history")).json()
    assert len(history["touches"]) == 2
    [audit] = history["merges"]
    assert audit["fields"]["email"] == {"value": "ivan@example.com", "from": older["id"]}
    assert audit["fields"]["phone"]["from"] == survivor["id"]
    # The folded lead's email now finds the survivor; merged leads are out of the default list.
    again = await leads.post("/v1/leads", json={"email": "ivan@example.com"})
    assert again.json()["id"] == survivor["id"]
    listed = (await leads.get("/v1/leads")).json()["items"]
    assert [item["id"] for item in listed] == [survivor["id"]]
    twice = await leads.post(f"/v1/leads/{survivor['id']}/merge", json={"other_lead_id": older["id"]})
    assert twice.status_code == 409
    assert (await leads.patch(f"/v1/leads/{older['id']}", json={"name": "x"})).status_code == 409
    [event] = [e for e in await events(admin_db, "lead.merged") if e["how"] == "manual"]
    assert event["merged_lead_id"] == older["id"]


async def test_lead_settings_are_validated_and_versioned(leads, stack, workspace):
    bad = await leads.patch("/v1/lead-settings", json={"default_region": "XX"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "default_region"
    ok = await leads.patch("/v1/lead-settings", json={"default_region": "de"}, headers={"If-Match": '"0"'})
    assert ok.status_code == 200
    assert ok.json()["default_region"] == "DE"
    stale = await leads.patch("/v1/lead-settings", json={"default_region": "RU"}, headers={"If-Match": '"0"'})
    assert stale.status_code == 412
    async with stack.client("leads", token_for(workspace, Role.rep)) as rep:
        assert (await rep.get("/v1/lead-settings")).json()["default_region"] == "DE"
        assert (await rep.patch("/v1/lead-settings", json={"default_region": "RU"})).status_code == 403


async def test_merging_with_a_lead_that_is_not_there_names_it(leads):
    lead = await new_lead(leads)
    missing = await leads.post(f"/v1/leads/{lead['id']}/merge", json={"other_lead_id": str(uuid.uuid4())})
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["field"] == "other_lead_id"
    itself = await leads.post(f"/v1/leads/{lead['id']}/merge", json={"other_lead_id": lead["id"]})
    assert itself.status_code == 422


async def test_a_rep_naming_another_owner_is_refused_naming_owner_id(stack, workspace):
    await stack.start("leads")
    async with stack.client("leads", token_for(workspace, Role.rep)) as rep:
        response = await rep.post("/v1/leads", json={"name": "Ivan", "owner_id": str(uuid.uuid4())})
    assert response.status_code == 403
    assert response.json()["errors"][0]["field"] == "owner_id"
