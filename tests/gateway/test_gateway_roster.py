"""The sales team through GraphQL against the real leads service: `me`, members, teams and territories as admins,
reps and another workspace see them, with refusals as `userErrors` that point into the input sent."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from services.common.auth import Role
from services.common.testing import token_for

pytestmark = pytest.mark.usefixtures("database_url")

MEMBER_FIELDS = """
  id name email role teamId territoryIds products channels timeZone
  workingHours { day intervals { start end } }
  capacity status awayUntil createdAt updatedAt version
"""
TEAM_FIELDS = "id name description headId version"
TERRITORY_FIELDS = "id name countries regions cities postalPrefixes version"
ERRORS = "userErrors { field code message }"

ME = f"{{ me {{ {MEMBER_FIELDS} }} }}"
MEMBER = f"""
query Member($id: ID!) {{ member(id: $id) {{ {MEMBER_FIELDS} team {{ {TEAM_FIELDS} head {{ id name }} }} }} }}
"""
MEMBERS = """
query Members($first: Int, $after: String, $role: MemberRole, $teamId: ID, $status: MemberStatus) {
  members(first: $first, after: $after, role: $role, teamId: $teamId, status: $status) {
    edges { cursor node { id name role team { name } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
TEAM = f"query Team($id: ID!) {{ team(id: $id) {{ {TEAM_FIELDS} head {{ id role }} }} }}"
TEAMS = f"{{ teams(first: 10) {{ edges {{ node {{ {TEAM_FIELDS} }} }} pageInfo {{ hasNextPage }} }} }}"
TERRITORY = f"query Territory($id: ID!) {{ territory(id: $id) {{ {TERRITORY_FIELDS} }} }}"
TERRITORIES = f"{{ territories(first: 10) {{ edges {{ node {{ {TERRITORY_FIELDS} }} }} }} }}"

CREATE_MEMBER = f"""
mutation Create($input: CreateMemberInput!) {{
  createMember(input: $input) {{ member {{ {MEMBER_FIELDS} }} {ERRORS} }}
}}
"""
UPDATE_MEMBER = f"""
mutation Update($input: UpdateMemberInput!) {{
  updateMember(input: $input) {{ member {{ {MEMBER_FIELDS} }} {ERRORS} }}
}}
"""
CREATE_TEAM = f"""
mutation C($input: CreateTeamInput!) {{ createTeam(input: $input) {{ team {{ {TEAM_FIELDS} }} {ERRORS} }} }}
"""
UPDATE_TEAM = f"""
mutation U($input: UpdateTeamInput!) {{ updateTeam(input: $input) {{ team {{ {TEAM_FIELDS} }} {ERRORS} }} }}
"""
DELETE_TEAM = f"mutation D($input: DeleteTeamInput!) {{ deleteTeam(input: $input) {{ deletedId {ERRORS} }} }}"
CREATE_TERRITORY = f"""
mutation C($input: CreateTerritoryInput!) {{
  createTerritory(input: $input) {{ territory {{ {TERRITORY_FIELDS} }} {ERRORS} }}
}}
"""
UPDATE_TERRITORY = f"""
mutation U($input: UpdateTerritoryInput!) {{
  updateTerritory(input: $input) {{ territory {{ {TERRITORY_FIELDS} }} {ERRORS} }}
}}
"""
DELETE_TERRITORY = f"""
mutation D($input: DeleteTerritoryInput!) {{ deleteTerritory(input: $input) {{ deletedId {ERRORS} }} }}
"""

ANNA = {
    "name": "Anna Smirnova",
    "email": "Anna@Example.com",
    "role": "HUNTER",
    "products": ["crm", "voip"],
    "channels": ["WEB_FORM", "ADS"],
    "timeZone": "Europe/Moscow",
    "capacity": 40,
    # Monday's intervals out of order: they come back in time order.
    "workingHours": [
        {"day": "MON", "intervals": [{"start": "14:00", "end": "18:00"}, {"start": "09:00", "end": "13:00"}]},
        {"day": "FRI", "intervals": [{"start": "09:00", "end": "16:00"}]},
    ],
}


@pytest.fixture
def admin(workspace: uuid.UUID) -> str:
    return token_for(workspace, Role.admin)


def errors_of(payload: dict[str, Any]) -> list[tuple[list[str], str]]:
    return [(error["field"], error["code"]) for error in payload["userErrors"]]


async def mutate(gateway: Any, token: str, mutation: str, name: str, /, **fields: Any) -> dict[str, Any]:
    """The mutation's payload, asserting it had no userErrors."""
    payload: dict[str, Any] = (await gateway.graphql(token, mutation, input=fields))[name]
    assert payload["userErrors"] == [], payload["userErrors"]
    return payload


async def test_me_puts_the_caller_on_the_roster_once_with_default_hours(live_gateway, workspace):
    user_id = uuid.uuid4()
    rep = token_for(workspace, Role.rep, user_id)

    first = (await live_gateway.graphql(rep, ME))["me"]
    again = (await live_gateway.graphql(rep, ME))["me"]

    assert first == again
    assert first["id"] == str(user_id)
    assert first["name"] == f"Member {str(user_id)[:8]}"
    assert (first["role"], first["status"], first["timeZone"], first["version"]) == ("HUNTER", "ACTIVE", "UTC", 1)
    nine_to_six = [{"start": "09:00", "end": "18:00"}]
    assert first["workingHours"] == [
        {"day": day, "intervals": nine_to_six if day not in ("SAT", "SUN") else []}
        for day in ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
    ]
    assert (await live_gateway.graphql(rep, MEMBER, id=str(user_id)))["member"]["version"] == 1


async def test_an_admin_builds_the_team_and_every_member_shows_theirs(live_gateway, workspace, admin):
    head = (await live_gateway.graphql(admin, ME))["me"]
    dach = (await mutate(
        live_gateway, admin, CREATE_TERRITORY, "createTerritory",
        name="DACH", countries=["de", "AT", "CH"], cities=["München"], postalPrefixes=["d-81"],
    ))["territory"]
    key = str(uuid.uuid4())
    team = (await mutate(
        live_gateway, admin, CREATE_TEAM, "createTeam",
        name="Enterprise", description="Big accounts", headId=head["id"], idempotencyKey=key,
    ))["team"]
    retried = (await mutate(
        live_gateway, admin, CREATE_TEAM, "createTeam",
        name="Enterprise", description="Big accounts", headId=head["id"], idempotencyKey=key,
    ))["team"]
    anna_id = str(uuid.uuid4())
    anna = (await mutate(
        live_gateway, admin, CREATE_MEMBER, "createMember",
        id=anna_id, teamId=team["id"], territoryIds=[dach["id"]], **ANNA,
    ))["member"]
    boris = (await mutate(
        live_gateway, admin, CREATE_MEMBER, "createMember",
        id=str(uuid.uuid4()), name="Boris", role="CLOSER", status="AWAY", awayUntil="2026-12-01T09:00:00+03:00",
    ))["member"]

    assert (dach["countries"], dach["cities"], dach["postalPrefixes"]) == (["DE", "AT", "CH"], ["München"], ["D-81"])
    assert retried == team
    assert (team["name"], team["headId"], team["version"]) == ("Enterprise", head["id"], 1)
    assert (anna["id"], anna["email"], anna["role"], anna["teamId"], anna["territoryIds"]) == (
        anna_id, "anna@example.com", "HUNTER", team["id"], [dach["id"]]
    )
    assert (anna["channels"], anna["capacity"], anna["timeZone"]) == (["WEB_FORM", "ADS"], 40, "Europe/Moscow")
    days = {day["day"]: day["intervals"] for day in anna["workingHours"]}
    assert days["MON"] == [{"start": "09:00", "end": "13:00"}, {"start": "14:00", "end": "18:00"}]
    assert days["FRI"] == [{"start": "09:00", "end": "16:00"}]
    assert days["TUE"] == []
    assert (boris["status"], boris["awayUntil"], boris["teamId"]) == ("AWAY", "2026-12-01T06:00:00+00:00", None)

    read = (await live_gateway.graphql(admin, MEMBER, id=anna_id))["member"]
    assert read["team"] == {**team, "head": {"id": head["id"], "name": head["name"]}}
    in_team = (await live_gateway.graphql(admin, MEMBERS, teamId=team["id"]))["members"]
    assert [(e["node"]["name"], e["node"]["team"]) for e in in_team["edges"]] == [
        ("Anna Smirnova", {"name": "Enterprise"})
    ]
    closers = (await live_gateway.graphql(admin, MEMBERS, role="CLOSER"))["members"]
    assert [e["node"]["name"] for e in closers["edges"]] == ["Boris"]
    away = (await live_gateway.graphql(admin, MEMBERS, status="AWAY"))["members"]
    assert [e["node"]["name"] for e in away["edges"]] == ["Boris"]
    # Everyone in the workspace reads the roster, page by page.
    rep = token_for(workspace, Role.rep)
    seen, after = [], None
    while True:
        page = (await live_gateway.graphql(rep, MEMBERS, first=1, after=after))["members"]
        seen += [edge["node"]["id"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert sorted(seen) == sorted([head["id"], anna_id, boris["id"]])
    assert (await live_gateway.graphql(rep, TEAM, id=team["id"]))["team"]["head"] == {"id": head["id"], "role": "ADMIN"}
    assert [e["node"] for e in (await live_gateway.graphql(rep, TEAMS))["teams"]["edges"]] == [team]
    assert [e["node"] for e in (await live_gateway.graphql(rep, TERRITORIES))["territories"]["edges"]] == [dach]
    assert (await live_gateway.graphql(rep, TERRITORY, id=dach["id"]))["territory"] == dach


async def test_changes_apply_to_the_version_read_and_a_stale_one_is_refused(live_gateway, admin):
    team = (await mutate(live_gateway, admin, CREATE_TEAM, "createTeam", name="SMB"))["team"]
    territory = (await mutate(live_gateway, admin, CREATE_TERRITORY, "createTerritory", name="Nord"))["territory"]
    member_id = str(uuid.uuid4())
    await mutate(live_gateway, admin, CREATE_MEMBER, "createMember", id=member_id, name="Anna", role="HUNTER")

    renamed = await mutate(
        live_gateway, admin, UPDATE_MEMBER, "updateMember",
        id=member_id, version=1, name="Anna S.", teamId=team["id"], capacity=None,
        workingHours=[{"day": "SAT", "intervals": [{"start": "10:00", "end": "14:00"}]}],
    )
    moved = await mutate(
        live_gateway, admin, UPDATE_TEAM, "updateTeam", id=team["id"], version=1, name="Mid-market", description="x"
    )
    widened = await mutate(
        live_gateway, admin, UPDATE_TERRITORY, "updateTerritory", id=territory["id"], version=1, countries=["SE", "NO"]
    )
    stale_member = (await live_gateway.graphql(
        admin, UPDATE_MEMBER, input={"id": member_id, "version": 1, "name": "Lost"}
    ))["updateMember"]
    stale_team = (await live_gateway.graphql(admin, UPDATE_TEAM, input={"id": team["id"], "version": 1, "name": "L"}))
    stale_delete = (await live_gateway.graphql(admin, DELETE_TERRITORY, input={"id": territory["id"], "version": 1}))

    member = renamed["member"]
    assert (member["name"], member["teamId"], member["capacity"], member["version"]) == ("Anna S.", team["id"], None, 2)
    days = {day["day"]: day["intervals"] for day in member["workingHours"]}
    assert days["SAT"] == [{"start": "10:00", "end": "14:00"}]
    assert days["MON"] == []
    assert (moved["team"]["name"], moved["team"]["description"], moved["team"]["version"]) == ("Mid-market", "x", 2)
    assert (widened["territory"]["countries"], widened["territory"]["version"]) == (["SE", "NO"], 2)
    for payload in (stale_member, stale_team["updateTeam"], stale_delete["deleteTerritory"]):
        assert errors_of(payload) == [(["input", "version"], "STALE_VERSION")]
    assert stale_member["member"] is None
    assert (await live_gateway.graphql(admin, TERRITORY, id=territory["id"]))["territory"]["version"] == 2


async def test_invalid_input_comes_back_as_user_errors_pointing_into_the_input(live_gateway, admin):
    await mutate(live_gateway, admin, CREATE_TEAM, "createTeam", name="Enterprise")
    bad_zone = (await live_gateway.graphql(
        admin, CREATE_MEMBER, input={"id": str(uuid.uuid4()), "name": "Anna", "role": "HUNTER", "timeZone": "Mars/Base"}
    ))["createMember"]
    bad_hours = (await live_gateway.graphql(
        admin, CREATE_MEMBER, input={
            "id": str(uuid.uuid4()), "name": "Anna", "role": "HUNTER",
            "workingHours": [
                {"day": "MON", "intervals": [{"start": "09:00", "end": "25:00"}]},
                {"day": "TUE", "intervals": [{"start": "09:00", "end": "12:00"}, {"start": "11:00", "end": "13:00"}]},
                # Tuesday again: its interval follows the first entry's two for the service.
                {"day": "TUE", "intervals": [{"start": "18:00", "end": "17:00"}]},
            ],
        },
    ))["createMember"]
    bad_team = (await live_gateway.graphql(
        admin, CREATE_MEMBER,
        input={"id": str(uuid.uuid4()), "name": "Anna", "role": "HUNTER", "teamId": str(uuid.uuid4())},
    ))["createMember"]
    bad_territory = (await live_gateway.graphql(
        admin, CREATE_TERRITORY, input={"name": "DACH", "countries": ["DE", "XX"], "postalPrefixes": ["80", "#1"]}
    ))["createTerritory"]
    taken = (await live_gateway.graphql(admin, CREATE_TEAM, input={"name": "ENTERPRISE"}))["createTeam"]
    nameless = (await live_gateway.graphql(
        admin, UPDATE_MEMBER, input={"id": (await live_gateway.graphql(admin, ME))["me"]["id"], "name": None}
    ))["updateMember"]

    assert bad_zone["member"] is None
    assert errors_of(bad_zone) == [(["input", "timeZone"], "invalid_time_zone")]
    assert sorted(errors_of(bad_hours)) == sorted([
        (["input", "workingHours", "0", "intervals", "0"], "invalid_time"),
        (["input", "workingHours", "1", "intervals", "1"], "overlap"),
        (["input", "workingHours", "2", "intervals", "0"], "empty_interval"),
    ])
    assert errors_of(bad_team) == [(["input", "teamId"], "unknown_team")]
    assert sorted(errors_of(bad_territory)) == [
        (["input", "countries", "1"], "invalid_country"),
        (["input", "postalPrefixes", "1"], "invalid_postal_prefix"),
    ]
    assert taken["team"] is None
    assert errors_of(taken) == [(["input", "name"], "CONFLICT")]
    assert errors_of(nameless) == [(["input", "name"], "null")]
    assert all(error["message"] for error in bad_hours["userErrors"])


async def test_a_rep_sets_their_own_availability_and_nothing_else(live_gateway, workspace, admin):
    rep = token_for(workspace, Role.rep)
    me = (await live_gateway.graphql(rep, ME))["me"]
    colleague = (await live_gateway.graphql(token_for(workspace, Role.rep), ME))["me"]

    away = await mutate(
        live_gateway, rep, UPDATE_MEMBER, "updateMember",
        id=me["id"], status="AWAY", awayUntil="2026-12-01T09:00:00Z",
        workingHours=[{"day": "MON", "intervals": [{"start": "10:00", "end": "12:00"}]}],
    )
    promoted = (await live_gateway.graphql(
        rep, UPDATE_MEMBER, input={"id": me["id"], "role": "HEAD_OF_SALES", "capacity": 1000, "status": "ACTIVE"}
    ))["updateMember"]
    meddling = (await live_gateway.graphql(
        rep, UPDATE_MEMBER, input={"id": colleague["id"], "status": "INACTIVE"}
    ))["updateMember"]
    own_team = (await live_gateway.graphql(rep, CREATE_TEAM, input={"name": "Mine"}))["createTeam"]

    assert (away["member"]["status"], away["member"]["awayUntil"]) == ("AWAY", "2026-12-01T09:00:00+00:00")
    assert promoted["member"] is None
    assert errors_of(promoted) == [(["input", "capacity"], "FORBIDDEN"), (["input", "role"], "FORBIDDEN")]
    assert errors_of(meddling) == [(["input", "status"], "FORBIDDEN")]
    assert errors_of(own_team) == [(["input"], "FORBIDDEN")]
    assert (await live_gateway.graphql(admin, MEMBER, id=me["id"]))["member"]["role"] == "HUNTER"


async def test_a_team_or_territory_still_in_use_is_not_deleted(live_gateway, admin):
    team = (await mutate(live_gateway, admin, CREATE_TEAM, "createTeam", name="Enterprise"))["team"]
    territory = (await mutate(live_gateway, admin, CREATE_TERRITORY, "createTerritory", name="DACH"))["territory"]
    member_id = str(uuid.uuid4())
    await mutate(
        live_gateway, admin, CREATE_MEMBER, "createMember",
        id=member_id, name="Anna Smirnova", role="HUNTER", teamId=team["id"], territoryIds=[territory["id"]],
    )

    refused = (await live_gateway.graphql(admin, DELETE_TEAM, input={"id": team["id"]}))["deleteTeam"]
    covered = (await live_gateway.graphql(admin, DELETE_TERRITORY, input={"id": territory["id"]}))["deleteTerritory"]
    await mutate(live_gateway, admin, UPDATE_MEMBER, "updateMember", id=member_id, teamId=None, territoryIds=[])
    deleted = await mutate(live_gateway, admin, DELETE_TEAM, "deleteTeam", id=team["id"], version=1)
    gone = await live_gateway.graphql(admin, DELETE_TEAM, input={"id": team["id"]})

    assert refused["deletedId"] is None
    assert errors_of(refused) == [(["input", "id"], "CONFLICT")]
    assert "Anna Smirnova" in refused["userErrors"][0]["message"]
    assert errors_of(covered) == [(["input", "id"], "CONFLICT")]
    assert deleted["deletedId"] == team["id"]
    assert errors_of(gone["deleteTeam"]) == [(["input", "id"], "NOT_FOUND")]
    assert (await live_gateway.graphql(admin, TEAM, id=team["id"])) == {"team": None}
    assert (await live_gateway.graphql(admin, MEMBER, id=member_id))["member"]["team"] is None


async def test_another_workspaces_roster_is_neither_seen_nor_changed(live_gateway, admin):
    team = (await mutate(live_gateway, admin, CREATE_TEAM, "createTeam", name="Enterprise"))["team"]
    territory = (await mutate(live_gateway, admin, CREATE_TERRITORY, "createTerritory", name="DACH"))["territory"]
    member_id = str(uuid.uuid4())
    await mutate(live_gateway, admin, CREATE_MEMBER, "createMember", id=member_id, name="Anna", role="HUNTER")
    outsider = token_for(uuid.uuid4(), Role.admin)

    assert (await live_gateway.graphql(outsider, MEMBER, id=member_id)) == {"member": None}
    assert (await live_gateway.graphql(outsider, TEAM, id=team["id"])) == {"team": None}
    assert (await live_gateway.graphql(outsider, TERRITORY, id=territory["id"])) == {"territory": None}
    assert (await live_gateway.graphql(outsider, MEMBER, id="not-an-id")) == {"member": None}
    listed = (await live_gateway.graphql(outsider, MEMBERS))["members"]["edges"]
    assert member_id not in [edge["node"]["id"] for edge in listed]
    renamed = (await live_gateway.graphql(outsider, UPDATE_MEMBER, input={"id": member_id, "name": "Mine"}))
    assert errors_of(renamed["updateMember"]) == [(["input", "id"], "NOT_FOUND")]
    joined = (await live_gateway.graphql(
        outsider, CREATE_MEMBER, input={"id": str(uuid.uuid4()), "name": "Eve", "role": "HUNTER", "teamId": team["id"]}
    ))
    assert errors_of(joined["createMember"]) == [(["input", "teamId"], "unknown_team")]


async def test_a_bad_team_id_filter_is_an_error_on_the_members_field(live_gateway, admin):
    body = await live_gateway.run(admin, MEMBERS, teamId="nope")

    assert body["data"] == {"members": None}
    (error,) = body["errors"]
    assert error["path"] == ["members"]
    assert error["message"].startswith("teamId: ")
