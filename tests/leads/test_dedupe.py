"""A person who reaches us twice is one lead with two touches, however and however fast they arrive."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from services.common.auth import Role
from services.common.testing import token_for

pytestmark = pytest.mark.usefixtures("database_url")


@pytest.fixture
def leads(leads_in_russia):
    return leads_in_russia


async def event_types(admin_db) -> list[str]:
    rows = await admin_db.fetch("SELECT type FROM leads.outbox ORDER BY seq")
    return [r["type"].removeprefix("voronka.").removesuffix(".v1") for r in rows]


async def test_a_repeat_by_email_merges_into_the_known_lead_and_keeps_the_new_touch(leads, admin_db):
    first = await leads.post("/v1/leads", json={
        "name": "Ivan Petrov", "email": "ivan@example.com", "source": "Spring webinar", "channel": "web_form",
        "utm": {"source": "google", "campaign": "spring"},
    })
    again = await leads.post("/v1/leads", json={
        "name": "I. Petrov", "email": " IVAN@Example.com ", "phone": "8 (916) 123-45-67", "company": "Acme",
        "source": "Price list", "channel": "ads", "utm": {"source": "yandex", "medium": "cpc"},
    })

    assert first.status_code == 201
    assert again.status_code == 200, again.text
    lead = again.json()
    assert lead["id"] == first.json()["id"]
    # The known lead keeps its name and first touch, and takes what it lacked.
    assert lead["name"] == "Ivan Petrov"
    assert lead["source"] == "Spring webinar"
    assert lead["utm"] == {"source": "google", "campaign": "spring"}
    assert lead["phone"] == "+79161234567"
    assert lead["company"] == "Acme"
    assert lead["version"] == 2
    history = (await leads.get(f"/v1/leads/{lead['id']}/history")).json()
    assert [(t["via"], t["channel"], t["utm"]) for t in history["touches"]] == [
        ("api", "web_form", {"source": "google", "campaign": "spring"}),
        ("api", "ads", {"source": "yandex", "medium": "cpc"}),
    ]
    # (and lead.scored, from the ScoringWorker, whenever it gets to it: not this test's subject)
    assert [t for t in await event_types(admin_db) if t != "lead.scored"] == ["lead.created", "lead.merged"]
    merged = json.loads(
        await admin_db.fetchval("SELECT event FROM leads.outbox WHERE type = 'voronka.lead.merged.v1'")
    )
    assert merged["data"]["how"] == "auto"
    assert sorted(merged["data"]["filled"]) == ["company", "phone"]


async def test_a_repeat_by_phone_in_another_format_merges(leads):
    first = await leads.post("/v1/leads", json={"name": "Olga", "phone": "+7 916 000-11-22"})
    again = await leads.post("/v1/leads", json={"name": "Olga K", "phone": "89160001122", "email": "olga@example.com"})
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    # The email it brought is now the lead's too: a third touch by that email finds it.
    third = await leads.post("/v1/leads", json={"email": "OLGA@example.com"})
    assert third.json()["id"] == first.json()["id"]


async def test_fifty_parallel_posts_of_one_email_make_exactly_one_lead(leads, admin_db):
    async def post(i: int):
        return await leads.post("/v1/leads", json={"name": f"Visitor {i}", "email": "rush@example.com"})

    answers = await asyncio.gather(*(post(i) for i in range(50)))

    assert sorted(r.status_code for r in answers) == [200] * 49 + [201]
    assert len({r.json()["id"] for r in answers}) == 1
    assert await admin_db.fetchval("SELECT count(*) FROM leads.leads") == 1
    assert await admin_db.fetchval("SELECT count(*) FROM leads.lead_touches") == 50
    assert (await event_types(admin_db)).count("lead.created") == 1


async def test_parallel_batches_sharing_emails_and_phones_never_duplicate(leads, admin_db):
    def batch(offset: int) -> dict:
        return {"items": [
            {"name": f"P{i}", "email": f"p{i}@example.com", "phone": f"+7916{i:07d}"}
            for i in range(offset, offset + 60)
        ]}

    # Overlapping ranges, in opposite orders too: no duplicates and no deadlock.
    bodies = [batch(0), batch(30), batch(0), {"items": list(reversed(batch(20)["items"]))}]
    answers = await asyncio.gather(*(leads.post("/v1/leads:batch", json=b) for b in bodies))

    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
    assert await admin_db.fetchval("SELECT count(*) FROM leads.leads") == 90
    assert await admin_db.fetchval("SELECT count(DISTINCT email) FROM leads.leads") == 90


async def test_a_batch_creates_merges_and_rejects_item_by_item(leads, admin_db):
    known = (await leads.post("/v1/leads", json={"name": "Known", "email": "known@example.com"})).json()
    response = await leads.post("/v1/leads:batch", json={"items": [
        {"name": "New one", "email": "new@example.com", "tags": ["expo"]},
        {"name": "Known again", "email": "KNOWN@example.com"},
        {"name": "Bad email", "email": "not-an-email"},
        {"name": "Bad phone", "phone": "12"},
        {"company": "Only a company"},
        {"name": "Same as first", "email": "new@example.com", "phone": "+7 916 555 44 33"},
        {"name": "Extra field", "fax": "123"},
    ]})

    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["created"], result["merged"], result["rejected"]) == (1, 2, 4)
    outcomes = [(r["index"], r["outcome"]) for r in result["items"]]
    assert outcomes == [(0, "created"), (1, "merged"), (2, "rejected"), (3, "rejected"), (4, "rejected"),
                        (5, "merged"), (6, "rejected")]
    assert result["items"][1]["lead_id"] == known["id"]
    assert result["items"][5]["lead_id"] == result["items"][0]["lead_id"]
    assert {e["field"] for e in result["items"][2]["errors"]} == {"items[2].email"}
    assert {e["field"] for e in result["items"][3]["errors"]} == {"items[3].phone"}
    assert {e["field"] for e in result["items"][4]["errors"]} == {"items[4].name"}
    assert {e["field"] for e in result["items"][6]["errors"]} == {"items[6].fax"}
    new = (await leads.get(f"/v1/leads/{result['items'][0]['lead_id']}")).json()
    assert new["phone"] == "+79165554433"  # filled in by the repeat within the same batch
    assert await admin_db.fetchval("SELECT count(*) FROM leads.leads") == 2


async def test_a_batch_over_a_thousand_items_is_refused_naming_items(leads):
    response = await leads.post("/v1/leads:batch", json={"items": [{"name": "x"}] * 1001})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "items"


async def test_a_reps_repeat_of_another_reps_lead_is_kept_without_showing_it(stack, workspace, admin_db):
    await stack.start("leads")
    anna, boris = uuid.uuid4(), uuid.uuid4()
    async with stack.client("leads", token_for(workspace, Role.rep, anna)) as as_anna, \
            stack.client("leads", token_for(workspace, Role.rep, boris)) as as_boris:
        annas = await as_anna.post("/v1/leads", json={"name": "Ivan", "email": "ivan@example.com"})
        boriss = await as_boris.post("/v1/leads", json={"name": "Ivan P", "email": "ivan@example.com"})

    assert boriss.status_code == 202
    assert boriss.json() == {"outcome": "merged", "lead_id": annas.json()["id"], "detail": boriss.json()["detail"]}
    assert "email" not in boriss.json()
    assert await admin_db.fetchval("SELECT count(*) FROM leads.lead_touches") == 2
    assert await admin_db.fetchval("SELECT owner_id FROM leads.leads") == anna


async def test_leads_of_different_workspaces_never_merge(stack, admin_db):
    await stack.start("leads")
    for _ in range(2):
        async with stack.client("leads", token_for(uuid.uuid4(), Role.admin)) as client:
            assert (await client.post("/v1/leads", json={"email": "same@example.com"})).status_code == 201
    assert await admin_db.fetchval("SELECT count(*) FROM leads.leads") == 2
