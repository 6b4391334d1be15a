"""The sales team: members, teams and territories as admins, heads of sales, reps and other workspaces see them."""

from __future__ import annotations

import asyncio
import json
import string
import uuid
from contextlib import AsyncExitStack

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.auth import Role
from services.common.problems import InvalidFields
from services.common.testing import token_for
from services.leads.roster import WEEKDAYS, Area, check_working_hours, covers

ANNA = {
    "name": "Anna Smirnova", "email": "Anna@Example.com", "role": "hunter", "products": ["crm", "crm", "voip"],
    "channels": ["web_form", "ads"], "time_zone": "Europe/Moscow", "capacity": 40,
    "working_hours": {"mon": [["14:00", "18:00"], ["09:00", "13:00"]], "fri": [["09:00", "16:00"]]},
}
SNAPSHOT_FIELDS = {
    "member_id", "workspace_id", "name", "email", "role", "team_id", "territory_ids", "products", "channels",
    "time_zone", "working_hours", "capacity", "status", "away_until", "member_version", "created_at", "updated_at",
}


async def events(admin_db, name: str) -> list[dict]:
    rows = await admin_db.fetch("SELECT event FROM leads.outbox WHERE type = $1 ORDER BY seq", f"voronka.{name}.v1")
    return [json.loads(r["event"])["data"] for r in rows]


async def add_member(client: httpx.AsyncClient, member_id: uuid.UUID | None = None, **fields) -> dict:
    body = {**ANNA, "id": str(member_id or uuid.uuid4()), **fields}
    response = await client.post("/v1/members", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def add(client: httpx.AsyncClient, path: str, body: dict) -> dict:
    response = await client.post(path, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def fields_named(response: httpx.Response) -> list[str]:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return [e["field"] for e in response.json().get("errors", [])]


@pytest.fixture
async def clients(stack, workspace):
    """One client per auth role in the test's workspace, each with its own user id (`.user_id`)."""
    await stack.start("leads")
    async with AsyncExitStack() as exits:
        made = {}
        for role in (Role.admin, Role.head_of_sales, Role.rep, Role.service):
            user_id = uuid.uuid4()
            client = await exits.enter_async_context(stack.client("leads", token_for(workspace, role, user_id)))
            client.user_id = user_id
            made[role] = client
        yield made


# ---- members ----------------------------------------------------------------------------------------------


async def test_an_admin_adds_a_member_whom_everyone_in_the_workspace_reads(clients, admin_db):
    admin, rep = clients[Role.admin], clients[Role.rep]
    member_id = uuid.uuid4()

    response = await admin.post("/v1/members", json={**ANNA, "id": str(member_id)})

    assert response.status_code == 201, response.text
    member = response.json()
    assert member["id"] == str(member_id)
    assert member["email"] == "anna@example.com"
    assert member["products"] == ["crm", "voip"]
    assert member["status"] == "active"
    assert member["territory_ids"] == []
    # Every weekday is there, each day's intervals in time order; days left out are days off.
    assert member["working_hours"] == {
        "mon": [["09:00", "13:00"], ["14:00", "18:00"]], "tue": [], "wed": [], "thu": [],
        "fri": [["09:00", "16:00"]], "sat": [], "sun": [],
    }
    assert response.headers["location"] == f"/v1/members/{member_id}"
    assert response.headers["etag"] == '"1"'
    read = await rep.get(f"/v1/members/{member_id}")
    assert read.status_code == 200
    assert read.json() == member
    assert read.headers["etag"] == '"1"'
    assert [m["id"] for m in (await rep.get("/v1/members")).json()["items"]] == [str(member_id)]

    [event] = await events(admin_db, "member.created")
    assert set(event) == SNAPSHOT_FIELDS | {"created_by"}
    assert event["member_id"] == str(member_id)
    assert event["created_by"] == str(admin.user_id)
    assert event["working_hours"] == member["working_hours"]
    assert event["channels"] == ["web_form", "ads"]
    assert event["member_version"] == 1


async def test_a_new_member_works_monday_to_friday_nine_to_six_in_utc_by_default(clients):
    response = await clients[Role.head_of_sales].post(
        "/v1/members", json={"id": str(uuid.uuid4()), "name": "Boris", "role": "closer"}
    )
    assert response.status_code == 201, response.text
    member = response.json()
    assert member["time_zone"] == "UTC"
    assert member["capacity"] is None
    assert member["working_hours"] == {
        **{day: [["09:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}, "sat": [], "sun": [],
    }


async def test_the_member_list_filters_by_role_team_and_status_and_pages_through_everyone(clients):
    admin = clients[Role.admin]
    team = await add(admin, "/v1/teams", {"name": "Enterprise"})
    ids = sorted(uuid.uuid4() for _ in range(5))
    await add_member(admin, ids[0], role="hunter", team_id=team["id"])
    await add_member(admin, ids[1], role="closer", team_id=team["id"])
    await add_member(admin, ids[2], role="closer", status="away")
    await add_member(admin, ids[3], role="farmer", status="inactive")
    await add_member(admin, ids[4], role="hunter")

    async def listed(**params) -> list[str]:
        response = await admin.get("/v1/members", params=params)
        assert response.status_code == 200, response.text
        return [m["id"] for m in response.json()["items"]]

    assert await listed(role="closer") == [str(ids[1]), str(ids[2])]
    assert await listed(team_id=team["id"]) == [str(ids[0]), str(ids[1])]
    assert await listed(status="inactive") == [str(ids[3])]
    assert await listed(role="hunter", team_id=team["id"]) == [str(ids[0])]
    seen, cursor = [], None
    while True:
        page = (await admin.get("/v1/members", params={"limit": 2, **({"cursor": cursor} if cursor else {})})).json()
        seen += [m["id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [str(i) for i in ids]
    bad_filter = await admin.get("/v1/members", params={"role": "wizard"})
    assert bad_filter.status_code == 422
    assert fields_named(bad_filter) == ["role"]
    assert fields_named(await admin.get("/v1/members", params={"cursor": "!!"})) == ["cursor"]


@pytest.mark.parametrize(("change", "field"), [
    ({"working_hours": {"mon": [["9am", "18:00"]]}}, "working_hours.mon[0]"),
    ({"working_hours": {"mon": [["18:00", "09:00"]]}}, "working_hours.mon[0]"),
    ({"working_hours": {"mon": [["09:00", "13:00"], ["12:00", "18:00"]]}}, "working_hours.mon[1]"),
    ({"working_hours": {"tue": [["09:00"]]}}, "working_hours.tue[0]"),
    ({"working_hours": {"tue": "09:00-18:00"}}, "working_hours.tue"),
    ({"working_hours": {"monday": []}}, "working_hours.monday"),
    ({"working_hours": [["09:00", "18:00"]]}, "working_hours"),
    ({"time_zone": "Mars/Olympus_Mons"}, "time_zone"),
    ({"time_zone": "../../etc/passwd"}, "time_zone"),
    ({"team_id": str(uuid.uuid4())}, "team_id"),
    ({"territory_ids": [str(uuid.uuid4())]}, "territory_ids[0]"),
    ({"capacity": -1}, "capacity"),
    ({"channels": ["ads", "carrier_pigeon"]}, "channels[1]"),
    ({"email": "not an email"}, "email"),
    ({"away_until": "2026-12-01T09:00:00"}, "away_until"),
    ({"role": "wizard"}, "role"),
    ({"status": "on_holiday"}, "status"),
    ({"name": "Anna\u0000"}, "name"),
    ({"nickname": "Annie"}, "nickname"),
])
async def test_a_bad_member_is_refused_naming_the_field(clients, change, field):
    admin = clients[Role.admin]
    created = await admin.post("/v1/members", json={**ANNA, "id": str(uuid.uuid4()), **change})
    assert created.status_code == 422, created.text
    assert field in fields_named(created)

    member = await add_member(admin)
    patched = await admin.patch(f"/v1/members/{member['id']}", json=change)
    assert patched.status_code == 422, patched.text
    assert field in fields_named(patched)
    assert (await admin.get(f"/v1/members/{member['id']}")).json()["version"] == 1


async def test_a_member_cannot_be_added_twice_nor_lose_a_field_it_always_has(clients):
    admin = clients[Role.admin]
    member = await add_member(admin)
    again = await admin.post("/v1/members", json={**ANNA, "id": member["id"]})
    assert again.status_code == 409
    assert fields_named(again) == ["id"]
    cleared = await admin.patch(f"/v1/members/{member['id']}", json={"role": None})
    assert cleared.status_code == 422
    assert fields_named(cleared) == ["role"]
    missing = await admin.patch(f"/v1/members/{uuid.uuid4()}", json={"name": "Nobody"})
    assert missing.status_code == 404


async def test_a_change_publishes_member_updated_and_needs_the_current_version_when_if_match_is_sent(
    clients, admin_db
):
    admin = clients[Role.admin]
    team = await add(admin, "/v1/teams", {"name": "SMB"})
    north = await add(admin, "/v1/territories", {"name": "North", "countries": ["se", "no"]})
    member = await add_member(admin)
    url = f"/v1/members/{member['id']}"

    changed = await admin.patch(url, json={
        "role": "closer", "team_id": team["id"], "territory_ids": [north["id"]], "capacity": None,
    }, headers={"If-Match": '"1"'})

    assert changed.status_code == 200, changed.text
    assert changed.headers["etag"] == '"2"'
    assert changed.json()["role"] == "closer"
    assert changed.json()["team_id"] == team["id"]
    assert changed.json()["territory_ids"] == [north["id"]]
    assert changed.json()["capacity"] is None
    assert changed.json()["name"] == "Anna Smirnova"
    stale = await admin.patch(url, json={"name": "Anna S."}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.headers["content-type"] == "application/problem+json"
    assert (await admin.get(url)).json()["name"] == "Anna Smirnova"
    # A change that changes nothing keeps the version and announces nothing.
    same = await admin.patch(url, json={"role": "closer"}, headers={"If-Match": '"2"'})
    assert same.status_code == 200
    assert same.headers["etag"] == '"2"'

    [event] = await events(admin_db, "member.updated")
    assert set(event) == SNAPSHOT_FIELDS | {"changed", "updated_by"}
    assert event["changed"] == ["capacity", "role", "team_id", "territory_ids"]
    assert event["role"] == "closer"
    assert event["team_id"] == team["id"]
    assert event["territory_ids"] == [north["id"]]
    assert event["products"] == ["crm", "voip"]
    assert event["member_version"] == 2
    assert event["updated_by"] == str(admin.user_id)


async def test_a_rep_cannot_add_members_or_change_another_but_can_set_themselves_away(clients, admin_db):
    admin, rep = clients[Role.admin], clients[Role.rep]
    colleague = await add_member(admin)
    me = (await rep.get("/v1/members/me")).json()

    refused = await rep.post("/v1/members", json={**ANNA, "id": str(uuid.uuid4())})
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    others = await rep.patch(f"/v1/members/{colleague['id']}", json={"status": "away"})
    assert others.status_code == 403
    assert fields_named(others) == ["status"]
    promotion = await rep.patch(f"/v1/members/{me['id']}", json={"status": "away", "role": "closer", "capacity": 5})
    assert promotion.status_code == 403
    assert fields_named(promotion) == ["capacity", "role"]
    assert (await rep.get(f"/v1/members/{me['id']}")).json()["version"] == me["version"]

    away = await rep.patch(f"/v1/members/{me['id']}", json={
        "status": "away", "away_until": "2026-12-01T09:00:00+03:00", "working_hours": {"mon": [["10:00", "14:00"]]},
    })
    assert away.status_code == 200, away.text
    assert away.json()["status"] == "away"
    assert away.json()["away_until"] == "2026-12-01T06:00:00Z"
    assert away.json()["working_hours"]["mon"] == [["10:00", "14:00"]]
    assert away.json()["working_hours"]["tue"] == []
    [event] = await events(admin_db, "member.updated")
    assert event["changed"] == ["away_until", "status", "working_hours"]
    assert event["updated_by"] == str(rep.user_id)
    assert (await admin.get(f"/v1/members/{colleague['id']}")).json()["status"] == "active"


async def test_a_service_reads_the_roster_but_changes_nothing(clients):
    service = clients[Role.service]
    listed = await service.get("/v1/members")
    assert listed.status_code == 200
    assert (await service.get("/v1/teams")).status_code == 200
    assert (await service.get("/v1/territories")).status_code == 200
    assert (await service.post("/v1/members", json={**ANNA, "id": str(uuid.uuid4())})).status_code == 403
    assert (await service.post("/v1/teams", json={"name": "Bots"})).status_code == 403
    assert (await service.get("/v1/members/me")).status_code == 403


# ---- /v1/members/me ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("auth_role", "member_role"), [
    (Role.rep, "hunter"), (Role.head_of_sales, "head_of_sales"), (Role.admin, "admin"),
])
async def test_me_makes_the_callers_member_record_once_from_their_token(
    stack, workspace, admin_db, auth_role, member_role
):
    await stack.start("leads")
    user_id = uuid.uuid4()
    async with stack.client("leads", token_for(workspace, auth_role, user_id)) as client:
        first = await client.get("/v1/members/me")
        again = await client.get("/v1/members/me")

    assert first.status_code == again.status_code == 200, first.text
    me = first.json()
    assert me["id"] == str(user_id)
    assert me["role"] == member_role
    assert me["name"] == f"Member {str(user_id)[:8]}"
    assert me["status"] == "active"
    assert first.headers["etag"] == '"1"'
    assert again.json() == me
    [event] = await events(admin_db, "member.created")
    assert event["member_id"] == str(user_id)
    assert event["created_by"] == str(user_id)


async def test_me_returns_the_record_an_admin_made_and_keeps_a_new_name(clients):
    admin, rep = clients[Role.admin], clients[Role.rep]
    await add_member(admin, rep.user_id, name="Anna Smirnova", role="closer")
    me = (await rep.get("/v1/members/me")).json()
    assert me["name"] == "Anna Smirnova"
    assert me["role"] == "closer"


async def test_two_first_calls_to_me_at_once_make_one_member(stack, workspace, admin_db):
    await stack.start("leads")
    user_id = uuid.uuid4()
    async with stack.client("leads", token_for(workspace, Role.rep, user_id)) as client:
        answers = await asyncio.gather(*(client.get("/v1/members/me") for _ in range(8)))

    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
    assert {a.json()["id"] for a in answers} == {str(user_id)}
    assert {a.json()["version"] for a in answers} == {1}
    assert await admin_db.fetchval("SELECT count(*) FROM leads.members") == 1
    assert len(await events(admin_db, "member.created")) == 1


# ---- teams ------------------------------------------------------------------------------------------------


async def test_teams_are_created_renamed_and_announced(clients, admin_db):
    head_of_sales = clients[Role.head_of_sales]
    head = await add_member(head_of_sales, role="head_of_sales")

    created = await head_of_sales.post(
        "/v1/teams", json={"name": " Enterprise ", "description": "Big accounts", "head_id": head["id"]}
    )

    assert created.status_code == 201, created.text
    team = created.json()
    assert team["name"] == "Enterprise"
    assert team["head_id"] == head["id"]
    assert created.headers["location"] == f"/v1/teams/{team['id']}"
    assert created.headers["etag"] == '"1"'
    assert (await clients[Role.rep].get(f"/v1/teams/{team['id']}")).json() == team
    url = f"/v1/teams/{team['id']}"
    renamed = await head_of_sales.patch(
        url, json={"name": "Key accounts", "head_id": None}, headers={"If-Match": '"1"'}
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["head_id"] is None
    assert renamed.headers["etag"] == '"2"'
    assert (await head_of_sales.patch(url, json={"description": None}, headers={"If-Match": '"1"'})).status_code == 412

    [made] = await events(admin_db, "team.created")
    assert made["team_id"] == team["id"]
    assert made["name"] == "Enterprise"
    assert made["head_id"] == head["id"]
    assert made["created_by"] == str(head_of_sales.user_id)
    [updated] = await events(admin_db, "team.updated")
    assert updated["changed"] == ["head_id", "name"]
    assert updated["name"] == "Key accounts"
    assert updated["team_version"] == 2


async def test_a_team_name_is_taken_whatever_its_case(clients):
    admin = clients[Role.admin]
    await add(admin, "/v1/teams", {"name": "Enterprise"})
    twin = await admin.post("/v1/teams", json={"name": "ENTERPRISE"})
    assert twin.status_code == 409
    assert fields_named(twin) == ["name"]
    other = await add(admin, "/v1/teams", {"name": "SMB"})
    renamed = await admin.patch(f"/v1/teams/{other['id']}", json={"name": "enterprise"})
    assert renamed.status_code == 409
    assert fields_named(renamed) == ["name"]
    unknown_head = await admin.post("/v1/teams", json={"name": "Mid-market", "head_id": str(uuid.uuid4())})
    assert unknown_head.status_code == 422
    assert fields_named(unknown_head) == ["head_id"]
    assert fields_named(await admin.post("/v1/teams", json={"name": ""})) == ["name"]


async def test_deleting_a_team_that_still_has_members_is_refused_naming_them(clients, admin_db):
    admin = clients[Role.admin]
    team = await add(admin, "/v1/teams", {"name": "Enterprise"})
    anna = await add_member(admin, team_id=team["id"])
    url = f"/v1/teams/{team['id']}"

    refused = await admin.delete(url)

    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    assert "Anna Smirnova" in refused.json()["detail"]
    assert [e["member_id"] for e in refused.json()["errors"]] == [anna["id"]]
    assert (await admin.get(url)).status_code == 200
    assert await events(admin_db, "team.deleted") == []
    assert (await clients[Role.rep].delete(url)).status_code == 403

    moved = await admin.patch(f"/v1/members/{anna['id']}", json={"team_id": None})
    assert moved.status_code == 200
    deleted = await admin.delete(url)
    assert deleted.status_code == 204
    assert (await admin.get(url)).status_code == 404
    assert (await admin.delete(url)).status_code == 404
    [event] = await events(admin_db, "team.deleted")
    assert event["team_id"] == team["id"]
    assert event["name"] == "Enterprise"
    assert event["deleted_by"] == str(admin.user_id)
    # The team is gone: it can no longer be given to anyone.
    gone = await admin.patch(f"/v1/members/{anna['id']}", json={"team_id": team["id"]})
    assert gone.status_code == 422
    assert fields_named(gone) == ["team_id"]


async def test_a_team_deleted_while_someone_joins_it_never_leaves_a_member_in_a_missing_team(clients, admin_db):
    admin = clients[Role.admin]
    member = await add_member(admin)
    url = f"/v1/members/{member['id']}"
    for i in range(8):
        team = await add(admin, "/v1/teams", {"name": f"Team {i}"})
        joined, deleted = await asyncio.gather(
            admin.patch(url, json={"team_id": team["id"]}), admin.delete(f"/v1/teams/{team['id']}")
        )
        # Whichever comes second sees the first: joined then refused, or deleted then unknown.
        assert (joined.status_code, deleted.status_code) in ((200, 409), (422, 204)), (joined.text, deleted.text)
        if joined.status_code == 200:
            assert (await admin.patch(url, json={"team_id": None})).status_code == 200
    orphans = await admin_db.fetchval(
        """
        SELECT count(*) FROM leads.members m WHERE team_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM leads.teams t WHERE t.workspace_id = m.workspace_id AND t.id = m.team_id)
        """
    )
    assert orphans == 0


# ---- territories ------------------------------------------------------------------------------------------


async def test_territories_are_normalized_validated_and_changed(clients):
    admin = clients[Role.admin]
    created = await admin.post("/v1/territories", json={
        "name": "DACH", "countries": ["de", " AT ", "ch", "DE"], "regions": ["Bavaria", "bavaria"],
        "cities": ["München"], "postal_prefixes": ["80", "d-81", "sw1a  1"],
    })
    assert created.status_code == 201, created.text
    territory = created.json()
    assert territory["countries"] == ["DE", "AT", "CH"]
    assert territory["regions"] == ["Bavaria"]
    assert territory["postal_prefixes"] == ["80", "D-81", "SW1A 1"]
    assert created.headers["etag"] == '"1"'
    assert (await clients[Role.rep].get(f"/v1/territories/{territory['id']}")).json() == territory

    bad = await admin.post("/v1/territories", json={"name": "Nowhere", "countries": ["DE", "XX"]})
    assert bad.status_code == 422
    assert fields_named(bad) == ["countries[1]"]
    bad_prefix = await admin.post("/v1/territories", json={"name": "Odd", "postal_prefixes": ["80*"]})
    assert fields_named(bad_prefix) == ["postal_prefixes[0]"]
    twin = await admin.post("/v1/territories", json={"name": "dach"})
    assert twin.status_code == 409
    assert fields_named(twin) == ["name"]

    url = f"/v1/territories/{territory['id']}"
    changed = await admin.patch(url, json={"cities": [], "countries": ["de"]}, headers={"If-Match": '"1"'})
    assert changed.status_code == 200, changed.text
    assert changed.json()["cities"] == []
    assert changed.json()["countries"] == ["DE"]
    assert changed.headers["etag"] == '"2"'
    assert (await admin.patch(url, json={"name": "D"}, headers={"If-Match": '"1"'})).status_code == 412
    assert fields_named(await admin.patch(url, json={"regions": None})) == ["regions"]
    assert (await clients[Role.rep].patch(url, json={"name": "Mine"})).status_code == 403


async def test_deleting_a_territory_a_member_covers_is_refused_naming_them(clients):
    admin = clients[Role.admin]
    north = await add(admin, "/v1/territories", {"name": "North", "countries": ["SE"]})
    south = await add(admin, "/v1/territories", {"name": "South", "countries": ["IT"]})
    anna = await add_member(admin, territory_ids=[south["id"], north["id"]])

    refused = await admin.delete(f"/v1/territories/{north['id']}")
    assert refused.status_code == 409
    assert [e["member_id"] for e in refused.json()["errors"]] == [anna["id"]]

    assert (await admin.patch(f"/v1/members/{anna['id']}", json={"territory_ids": [south["id"]]})).status_code == 200
    assert (await admin.delete(f"/v1/territories/{north['id']}")).status_code == 204
    assert (await admin.get(f"/v1/territories/{north['id']}")).status_code == 404
    listed = (await admin.get("/v1/territories")).json()
    assert [t["id"] for t in listed["items"]] == [south["id"]]


# ---- across the roster ------------------------------------------------------------------------------------


async def test_another_workspace_sees_and_touches_none_of_the_roster(clients, stack):
    admin = clients[Role.admin]
    team = await add(admin, "/v1/teams", {"name": "Enterprise"})
    territory = await add(admin, "/v1/territories", {"name": "North"})
    member = await add_member(admin, team_id=team["id"])

    async with stack.client("leads", token_for(uuid.uuid4(), Role.admin)) as stranger:
        for path in (f"/v1/members/{member['id']}", f"/v1/teams/{team['id']}", f"/v1/territories/{territory['id']}"):
            assert (await stranger.get(path)).status_code == 404
            assert (await stranger.patch(path, json={"name": "Mine"})).status_code == 404
        for path in ("/v1/members", "/v1/teams", "/v1/territories"):
            assert (await stranger.get(path)).json()["items"] == []
        assert (await stranger.delete(f"/v1/teams/{team['id']}")).status_code == 404
        assert (await stranger.delete(f"/v1/territories/{territory['id']}")).status_code == 404
        borrowed = await stranger.post("/v1/members", json={
            **ANNA, "id": str(uuid.uuid4()), "team_id": team["id"], "territory_ids": [territory["id"]],
        })
        assert borrowed.status_code == 422
        assert fields_named(borrowed) == ["team_id", "territory_ids[0]"]
        # Names and ids are per workspace: the same ones are free here.
        assert (await stranger.post("/v1/teams", json={"name": "Enterprise"})).status_code == 201
        assert (await stranger.post("/v1/members", json={**ANNA, "id": member["id"]})).status_code == 201
    assert (await admin.get(f"/v1/members/{member['id']}")).json() == member


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/members", {**ANNA, "id": "018f0000-0000-7000-8000-000000000001"}),
    ("/v1/teams", {"name": "Enterprise"}),
    ("/v1/territories", {"name": "North", "countries": ["SE"]}),
])
async def test_a_retried_create_with_the_same_key_returns_the_first_answer(clients, admin_db, path, body):
    admin = clients[Role.admin]
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = await admin.post(path, json=body, headers=key)
    retry = await admin.post(path, json=body, headers=key)

    assert first.status_code == retry.status_code == 201, retry.text
    assert retry.content == first.content
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.headers["location"] == first.headers["location"]
    table = path.rsplit("/", 1)[1]
    assert await admin_db.fetchval(f"SELECT count(*) FROM leads.{table}") == 1
    assert await admin_db.fetchval("SELECT count(*) FROM leads.outbox") == (0 if table == "territories" else 1)
    reused = await admin.post(path, json={**body, "name": "Someone else"}, headers=key)
    assert reused.status_code == 422
    assert fields_named(reused) == ["Idempotency-Key"]


# ---- covers and working hours (no database) ---------------------------------------------------------------


def test_a_territory_covers_a_place_when_every_list_it_fills_matches():
    dach = Area.of(countries=["DE", "AT"], cities=["München", "Wien"])
    assert covers(dach, country="de", region=None, city=" münchen ", postal_code=None)
    assert covers(dach, country="AT", region="Anywhere", city="WIEN", postal_code="1010")
    assert not covers(dach, country="CH", region=None, city="Wien", postal_code=None)
    assert not covers(dach, country="DE", region=None, city="Berlin", postal_code=None)
    assert not covers(dach, country="DE", region=None, city=None, postal_code=None)
    london = Area.of(countries=["GB"], postal_prefixes=["SW1A", "EC"])
    assert covers(london, country="GB", region=None, city=None, postal_code="sw1a 1aa")
    assert covers(london, country="GB", region=None, city=None, postal_code="EC2A-4NE")
    assert not covers(london, country="GB", region=None, city=None, postal_code="N1 9GU")
    assert not covers(london, country="GB", region=None, city=None, postal_code=None)
    assert covers(Area.of(), country=None, region=None, city=None, postal_code=None)


# Latin and Cyrillic letters (whose case rules are plain), spaces and dashes.
LETTERS = string.ascii_letters + "".join(map(chr, range(0x410, 0x450))) + chr(0x401) + chr(0x451)
PLACE = st.text(alphabet=LETTERS + " -", min_size=1, max_size=12).filter(lambda s: s.strip(" -") != "")
COUNTRY = st.sampled_from(["DE", "AT", "CH", "RU", "US", "GB", "FR"])
POSTAL = st.text(alphabet="0123456789ABCDEFGHJKLMNPRSTUVWXYZ", min_size=1, max_size=6)
AREAS = st.builds(
    Area.of,
    countries=st.lists(COUNTRY, max_size=3), regions=st.lists(PLACE, max_size=3),
    cities=st.lists(PLACE, max_size=3), postal_prefixes=st.lists(POSTAL, max_size=3),
)
PLACES = st.fixed_dictionaries({
    "country": st.none() | COUNTRY, "region": st.none() | PLACE, "city": st.none() | PLACE,
    "postal_code": st.none() | POSTAL,
})


def _model(area: Area, country, region, city, postal_code) -> bool:
    """covers, written the slow way: each filled list has to have an entry equal to the place's value."""
    def same(a: str, b: str) -> bool:
        return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()

    checks = [
        (area.countries, country is not None and any(c == country.upper() for c in area.countries)),
        (area.regions, region is not None and any(same(r, region) for r in area.regions)),
        (area.cities, city is not None and any(same(c, city) for c in area.cities)),
        (area.postal_prefixes, postal_code is not None and any(
            postal_code.replace(" ", "").replace("-", "").upper()[:len(p)] == p for p in area.postal_prefixes
        )),
    ]
    return all(matched for entries, matched in checks if entries)


@given(AREAS, PLACES)
def test_covers_agrees_with_a_plain_model(area, place):
    assert covers(area, **place) == _model(area, **place)


@given(AREAS, PLACES)
def test_covers_ignores_letter_case_and_spacing(area, place):
    shouted = {k: (f"  {v.swapcase()} " if v is not None else None) for k, v in place.items()}
    assert covers(area, **shouted) == covers(area, **place)


@given(AREAS, st.data())
def test_a_place_made_of_the_territorys_own_entries_is_covered(area, data):
    def pick(entries) -> str | None:
        return data.draw(st.sampled_from(sorted(entries))) if entries else None

    prefix = pick(area.postal_prefixes)
    place = {
        "country": pick(area.countries) or "DE", "region": pick(area.regions) or "Somewhere",
        "city": pick(area.cities) or "Sometown", "postal_code": (prefix + data.draw(POSTAL)) if prefix else None,
    }
    assert covers(area, **place)


INTERVAL = st.tuples(st.integers(0, 47), st.integers(1, 48)).filter(lambda t: t[0] < t[1])


def _clock(half_hours: int) -> str:
    return f"{half_hours // 2:02d}:{30 * (half_hours % 2):02d}"


@given(st.dictionaries(st.sampled_from(WEEKDAYS), st.lists(INTERVAL, max_size=4)))
def test_working_hours_are_accepted_exactly_when_no_two_intervals_of_a_day_overlap(week):
    sent = {day: [[_clock(a), _clock(b)] for a, b in intervals] for day, intervals in week.items()}
    # The model: a day is fine when no half-hour slot is claimed twice.
    overlapping = {
        day for day, intervals in week.items()
        if sum(b - a for a, b in intervals) != len({slot for a, b in intervals for slot in range(a, b)})
    }
    if overlapping:
        with pytest.raises(InvalidFields) as refused:
            check_working_hours(sent)
        errors = refused.value.errors
        assert {e["field"].split("[")[0] for e in errors} == {f"working_hours.{day}" for day in overlapping}
        assert all(e["code"] == "overlap" for e in errors)
        return
    stored = check_working_hours(sent)
    assert list(stored) == list(WEEKDAYS)
    for day in WEEKDAYS:
        assert stored[day] == sorted(sent.get(day, []))
