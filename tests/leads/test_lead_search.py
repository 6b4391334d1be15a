"""Finding leads: filters, free-text search, sorting and cursors that hold under concurrent inserts."""

from __future__ import annotations

import uuid

import pytest

from services.common.auth import Role
from services.common.testing import token_for

pytestmark = pytest.mark.usefixtures("database_url")


@pytest.fixture
def leads(leads_in_russia):
    return leads_in_russia


async def names(leads, **params) -> list[str]:
    response = await leads.get("/v1/leads", params=params)
    assert response.status_code == 200, response.text
    return [lead["name"] for lead in response.json()["items"]]


async def test_filters_narrow_the_list_and_combine(leads):
    owner = uuid.uuid4()
    source = uuid.uuid4()
    await leads.post("/v1/leads:batch", json={"items": [
        {"name": "Anna", "email": "anna@acme.com", "channel": "ads", "tags": ["vip"], "owner_id": str(owner)},
        {"name": "Boris", "phone": "8 916 111 22 33", "company": "Globex", "channel": "web_form",
         "source_id": str(source)},
        {"name": "Clara", "email": "clara@initech.com", "channel": "ads", "tags": ["expo", "vip"]},
    ]})
    clara = (await leads.get("/v1/leads", params={"q": "clara"})).json()["items"][0]
    await leads.post(f"/v1/leads/{clara['id']}/status", json={"status": "working"})

    assert await names(leads) == ["Clara", "Boris", "Anna"]
    assert await names(leads, channel="ads") == ["Clara", "Anna"]
    assert await names(leads, tag="vip", channel="ads") == ["Clara", "Anna"]
    assert await names(leads, tag="expo") == ["Clara"]
    assert await names(leads, status="working") == ["Clara"]
    assert await names(leads, status=["new", "working"]) == ["Clara", "Boris", "Anna"]
    assert await names(leads, owner_id=str(owner)) == ["Anna"]
    assert await names(leads, unassigned="true") == ["Clara", "Boris"]
    assert await names(leads, source_id=str(source)) == ["Boris"]
    assert await names(leads, sort="created_at") == ["Anna", "Boris", "Clara"]
    # Free text: part of a name, an email, a company, or phone digits however they are typed.
    assert await names(leads, q="ACME") == ["Anna"]
    assert await names(leads, q="glob") == ["Boris"]
    assert await names(leads, q="111-22-33") == ["Boris"]
    assert await names(leads, q="(916) 111") == ["Boris"]
    assert await names(leads, q="initech.co") == ["Clara"]
    assert await names(leads, q="100%") == []


async def test_created_range_and_bad_parameters_are_named(leads):
    await leads.post("/v1/leads", json={"name": "Now"})
    assert await names(leads, created_after="2020-01-01T00:00:00+00:00") == ["Now"]
    assert await names(leads, created_before="2020-01-01T00:00:00Z") == []
    for params, field in [
        ({"created_after": "2020-01-01T00:00:00"}, "created_after"),
        ({"q": "ab"}, "q"),
        ({"sort": "name"}, "sort"),
        ({"status": "sleeping"}, "status"),
        ({"cursor": "garbage"}, "cursor"),
        ({"channel": "tv"}, "channel"),
    ]:
        response = await leads.get("/v1/leads", params=params)
        assert response.status_code == 422, params
        assert response.json()["errors"][0]["field"] in (field, f"{field}[0]"), response.json()


async def test_paging_is_stable_while_new_leads_arrive(leads):
    for i in range(7):
        await leads.post("/v1/leads", json={"name": f"L{i}"})
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await leads.get("/v1/leads", params=params)).json()
        seen += [lead["name"] for lead in page["items"]]
        # A lead arriving mid-way shows up on a fresh first page, never shifting the pages being read.
        await leads.post("/v1/leads", json={"name": f"late {len(seen)}"})
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"L{i}" for i in reversed(range(7))]


async def test_paging_by_last_update_follows_the_edits(leads):
    ids = [(await leads.post("/v1/leads", json={"name": f"L{i}"})).json()["id"] for i in range(4)]
    await leads.patch(f"/v1/leads/{ids[0]}", json={"company": "edited"})
    first = (await leads.get("/v1/leads", params={"sort": "-updated_at", "limit": 2})).json()
    second = (await leads.get("/v1/leads", params={"sort": "-updated_at", "limit": 2,
                                                   "cursor": first["next_cursor"]})).json()
    assert [lead["name"] for lead in first["items"] + second["items"]] == ["L0", "L3", "L2", "L1"]
    wrong = await leads.get("/v1/leads", params={"sort": "created_at", "cursor": first["next_cursor"]})
    assert wrong.status_code == 422


async def test_a_rep_finds_only_their_own_leads(stack, workspace):
    await stack.start("leads")
    rep = uuid.uuid4()
    async with stack.client("leads", token_for(workspace, Role.rep, rep)) as as_rep, \
            stack.client("leads", token_for(workspace, Role.head_of_sales)) as as_head:
        await as_rep.post("/v1/leads", json={"name": "Mine", "email": "mine@example.com"})
        await as_head.post("/v1/leads", json={"name": "Theirs", "email": "theirs@example.com"})
        assert await names(as_rep) == ["Mine"]
        assert await names(as_rep, q="example") == ["Mine"]
        assert await names(as_head, q="example") == ["Theirs", "Mine"]
