"""Distribution through GraphQL against the real leads service (with its AssignmentWorker running): assignment
rules made, read, changed and deleted by heads of sales, leads taken in without an owner handed to the team by
them, and each lead's assignments read back with who got it, by which rule and why."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from services.common.auth import Role
from services.common.testing import eventually, token_for

pytestmark = pytest.mark.usefixtures("database_url")

ERRORS = "userErrors { field code message }"
RULE_FIELDS = """
  id name position active stage method teamId memberIds onlyWorkingHours createdAt updatedAt version
  conditions { channels sourceIds tags countries territoryIds products grades }
  weights { memberId weight }
"""

CREATE_MEMBER = f"""
mutation C($input: CreateMemberInput!) {{ createMember(input: $input) {{ member {{ id }} {ERRORS} }} }}
"""
UPDATE_MEMBER = f"""
mutation U($input: UpdateMemberInput!) {{ updateMember(input: $input) {{ member {{ id }} {ERRORS} }} }}
"""
CREATE_TEAM = f"mutation C($input: CreateTeamInput!) {{ createTeam(input: $input) {{ team {{ id }} {ERRORS} }} }}"
CREATE_LEAD = f"""
mutation C($input: CreateLeadInput!) {{
  createLead(input: $input) {{ lead {{ id ownerId assignmentState assignmentRuleId }} {ERRORS} }}
}}
"""
CREATE_RULE = f"""
mutation C($input: CreateAssignmentRuleInput!) {{
  createAssignmentRule(input: $input) {{ assignmentRule {{ {RULE_FIELDS} }} {ERRORS} }}
}}
"""
UPDATE_RULE = f"""
mutation U($input: UpdateAssignmentRuleInput!) {{
  updateAssignmentRule(input: $input) {{ assignmentRule {{ {RULE_FIELDS} }} {ERRORS} }}
}}
"""
DELETE_RULE = f"""
mutation D($input: DeleteAssignmentRuleInput!) {{ deleteAssignmentRule(input: $input) {{ deletedId {ERRORS} }} }}
"""
RULE = f"""
query Rule($id: ID!) {{
  assignmentRule(id: $id) {{ {RULE_FIELDS} team {{ name }} members {{ name }} }}
}}
"""
RULES = """
query Rules($first: Int, $after: String, $stage: AssignmentStage) {
  assignmentRules(first: $first, after: $after, stage: $stage) {
    edges { node { name stage position } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
LEAD = """
query Lead($id: ID!) {
  lead(id: $id) {
    id ownerId hunterId assignmentState assignmentRuleId
    assignments {
      memberId member { name } previousOwnerId ruleId rule { name } stage method reason
      skipped { memberId why member { name } } assignedAt assignedBy
    }
  }
}
"""
STATE = "query State($id: ID!) { lead(id: $id) { assignmentState } }"


@pytest.fixture
def head(workspace: uuid.UUID) -> str:
    return token_for(workspace, Role.head_of_sales)


def errors_of(payload: dict[str, Any]) -> list[tuple[list[str], str]]:
    return [(error["field"], error["code"]) for error in payload["userErrors"]]


async def mutate(gateway: Any, token: str, mutation: str, name: str, /, **fields: Any) -> dict[str, Any]:
    """The mutation's payload, asserting it had no userErrors."""
    payload: dict[str, Any] = (await gateway.graphql(token, mutation, input=fields))[name]
    assert payload["userErrors"] == [], payload["userErrors"]
    return payload


async def hunters(gateway: Any, token: str, team_id: str | None, *people: tuple[str, str]) -> list[str]:
    """Members (name, status) in the team, their ids in id order: the order round robin takes them in."""
    ids = sorted(str(uuid.uuid4()) for _ in people)
    for member_id, (name, status) in zip(ids, people, strict=True):
        await mutate(
            gateway, token, CREATE_MEMBER, "createMember",
            id=member_id, name=name, role="HUNTER", teamId=team_id, status=status,
        )
    return ids


async def new_lead(gateway: Any, token: str, **fields: Any) -> dict[str, Any]:
    lead: dict[str, Any] = (await mutate(gateway, token, CREATE_LEAD, "createLead", **fields))["lead"]
    return lead


async def settled(gateway: Any, token: str, lead_id: str, state: str) -> dict[str, Any]:
    """The lead once the AssignmentWorker has left it in `state`."""
    await eventually(
        lambda: gateway.graphql(token, STATE, id=lead_id),
        lambda data: data["lead"]["assignmentState"] == state,
        timeout=10,
    )
    lead: dict[str, Any] = (await gateway.graphql(token, LEAD, id=lead_id))["lead"]
    return lead


async def test_leads_without_an_owner_go_round_the_team_and_say_why(live_gateway, head):
    team = (await mutate(live_gateway, head, CREATE_TEAM, "createTeam", name="Inbound"))["team"]
    anna, boris, vera = await hunters(
        live_gateway, head, team["id"], ("Anna", "ACTIVE"), ("Boris", "ACTIVE"), ("Vera", "AWAY")
    )
    key = str(uuid.uuid4())
    fields = {
        "name": "Web leads", "stage": "NEW", "method": "ROUND_ROBIN", "teamId": team["id"],
        "conditions": {"channels": ["WEB_FORM"], "tags": ["inbound"]}, "idempotencyKey": key,
    }
    rule = (await mutate(live_gateway, head, CREATE_RULE, "createAssignmentRule", **fields))["assignmentRule"]
    retried = (await mutate(live_gateway, head, CREATE_RULE, "createAssignmentRule", **fields))["assignmentRule"]

    assert retried == rule
    assert (rule["stage"], rule["method"], rule["teamId"], rule["memberIds"]) == (
        "NEW", "ROUND_ROBIN", team["id"], None
    )
    assert (rule["position"], rule["active"], rule["onlyWorkingHours"], rule["version"]) == (0, True, False, 1)
    assert rule["conditions"] == {
        "channels": ["WEB_FORM"], "sourceIds": None, "tags": ["inbound"], "countries": None, "territoryIds": None,
        "products": None, "grades": None,
    }
    assert rule["weights"] == []
    read = (await live_gateway.graphql(head, RULE, id=rule["id"]))["assignmentRule"]
    assert read == {**rule, "team": {"name": "Inbound"}, "members": []}

    taken = [
        await new_lead(live_gateway, head, name=f"Lead {i}", channel="WEB_FORM", tags=["Inbound"]) for i in range(4)
    ]
    stray = await new_lead(live_gateway, head, name="Cold", channel="COLD_LIST")

    assert {(lead["ownerId"], lead["assignmentState"]) for lead in taken} == {(None, "PENDING")}
    leads = [await settled(live_gateway, head, lead["id"], "ASSIGNED") for lead in taken]
    # In turn, in id order; Vera is away, so the turn passes over her every time.
    assert [lead["ownerId"] for lead in leads] == [anna, boris, anna, boris]
    for lead in leads:
        assert (lead["assignmentRuleId"], lead["hunterId"]) == (rule["id"], None)
        (assignment,) = lead["assignments"]
        assert assignment["memberId"] == lead["ownerId"]
        assert (assignment["ruleId"], assignment["rule"], assignment["stage"], assignment["method"]) == (
            rule["id"], {"name": "Web leads"}, "NEW", "ROUND_ROBIN"
        )
        assert (assignment["previousOwnerId"], assignment["assignedBy"]) == (None, None)
        assert assignment["skipped"] == [{"memberId": vera, "why": "away", "member": {"name": "Vera"}}]
        assert assignment["member"]["name"] in assignment["reason"]
        assert "Vera skipped: away" in assignment["reason"]
    assert [lead["assignments"][0]["member"]["name"] for lead in leads] == ["Anna", "Boris", "Anna", "Boris"]

    unmatched = await settled(live_gateway, head, stray["id"], "UNMATCHED")
    assert (unmatched["ownerId"], unmatched["assignmentRuleId"], unmatched["assignments"]) == (None, None, [])


async def test_a_lead_nobody_can_take_waits_on_its_rule_until_someone_can(live_gateway, head):
    (anna,) = await hunters(live_gateway, head, None, ("Anna", "AWAY"))
    rule = (await mutate(
        live_gateway, head, CREATE_RULE, "createAssignmentRule",
        name="Anna's", stage="NEW", method="FIXED", memberIds=[anna],
    ))["assignmentRule"]
    assert (await live_gateway.graphql(head, RULE, id=rule["id"]))["assignmentRule"]["members"] == [{"name": "Anna"}]
    lead = await new_lead(live_gateway, head, name="Ivan")

    queued = await settled(live_gateway, head, lead["id"], "QUEUED")
    await mutate(live_gateway, head, UPDATE_MEMBER, "updateMember", id=anna, status="ACTIVE")
    assigned = await settled(live_gateway, head, lead["id"], "ASSIGNED")

    assert (queued["ownerId"], queued["assignmentRuleId"]) == (None, rule["id"])
    (waiting,) = queued["assignments"]
    assert (waiting["memberId"], waiting["member"], waiting["method"]) == (None, None, "FIXED")
    assert waiting["skipped"] == [{"memberId": anna, "why": "away", "member": {"name": "Anna"}}]
    assert (assigned["ownerId"], assigned["assignmentRuleId"]) == (anna, rule["id"])
    assert [a["member"] for a in assigned["assignments"]] == [None, {"name": "Anna"}]


async def test_invalid_rules_come_back_as_user_errors_pointing_into_the_input(live_gateway, head):
    (anna,) = await hunters(live_gateway, head, None, ("Anna", "ACTIVE"))
    unknown = str(uuid.uuid4())
    malformed = (await live_gateway.graphql(head, CREATE_RULE, input={
        "name": "", "stage": "NEW", "method": "WEIGHTED_ROUND_ROBIN", "memberIds": [anna],
        "conditions": {"countries": ["DE", "XX"]},
        "weights": [{"memberId": anna, "weight": 3}, {"memberId": "nope", "weight": 2000}],
    }))["createAssignmentRule"]
    unfit = (await live_gateway.graphql(head, CREATE_RULE, input={
        "name": "Unfit", "stage": "NEW", "method": "ROUND_ROBIN", "memberIds": [anna, unknown],
        "conditions": {"products": ["crm"], "territoryIds": [unknown]},
        "weights": [{"memberId": anna, "weight": 1}, {"memberId": unknown, "weight": 5}],
    }))["createAssignmentRule"]
    no_pool = (await live_gateway.graphql(head, CREATE_RULE, input={
        "name": "Nobody", "stage": "QUALIFIED", "method": "FIXED",
    }))["createAssignmentRule"]

    assert malformed["assignmentRule"] is None
    # The second weight is wrong twice: its member id is no id, and its weight is out of range.
    assert sorted(errors_of(malformed)) == sorted([
        (["input", "name"], "too_short"),
        (["input", "conditions", "countries", "1"], "invalid_country"),
        (["input", "weights", "1", "memberId"], "uuid_parsing"),
        (["input", "weights", "1", "weight"], "less_than_equal"),
    ])
    assert sorted(errors_of(unfit)) == sorted([
        (["input", "memberIds", "1"], "unknown_member"),
        (["input", "conditions", "products"], "stage_qualified"),
        (["input", "conditions", "territoryIds", "0"], "unknown_territory"),
        (["input", "weights"], "not_weighted"),
        (["input", "weights", "1", "memberId"], "unknown_member"),
    ])
    assert sorted(errors_of(no_pool)) == [(["input", "memberIds"], "fixed_owner"), (["input", "teamId"], "pool")]
    assert all(error["message"] for error in unfit["userErrors"])
    assert (await live_gateway.graphql(head, RULES))["assignmentRules"]["edges"] == []


async def test_a_rep_reads_the_rules_but_cannot_change_them(live_gateway, workspace, head):
    (anna,) = await hunters(live_gateway, head, None, ("Anna", "ACTIVE"))
    rule = (await mutate(
        live_gateway, head, CREATE_RULE, "createAssignmentRule", name="Anna's", stage="NEW", method="FIXED",
        memberIds=[anna],
    ))["assignmentRule"]
    rep = token_for(workspace, Role.rep)

    created = (await live_gateway.graphql(rep, CREATE_RULE, input={
        "name": "Mine", "stage": "NEW", "method": "FIXED", "memberIds": [anna],
    }))["createAssignmentRule"]
    changed = (await live_gateway.graphql(rep, UPDATE_RULE, input={"id": rule["id"], "active": False}))
    deleted = (await live_gateway.graphql(rep, DELETE_RULE, input={"id": rule["id"]}))

    assert created == {"assignmentRule": None, "userErrors": [created["userErrors"][0]]}
    assert errors_of(created) == [(["input"], "FORBIDDEN")]
    assert errors_of(changed["updateAssignmentRule"]) == [(["input"], "FORBIDDEN")]
    assert errors_of(deleted["deleteAssignmentRule"]) == [(["input"], "FORBIDDEN")]
    assert (await live_gateway.graphql(rep, RULE, id=rule["id"]))["assignmentRule"]["active"] is True
    assert [e["node"]["name"] for e in (await live_gateway.graphql(rep, RULES))["assignmentRules"]["edges"]] == [
        "Anna's"
    ]
    assert (await live_gateway.graphql(token_for(uuid.uuid4(), Role.admin), RULE, id=rule["id"])) == {
        "assignmentRule": None
    }


async def test_rules_change_at_the_version_read_list_in_evaluation_order_and_are_deleted(live_gateway, head):
    anna, boris = await hunters(live_gateway, head, None, ("Anna", "ACTIVE"), ("Boris", "ACTIVE"))
    first = (await mutate(
        live_gateway, head, CREATE_RULE, "createAssignmentRule",
        name="Everyone", stage="NEW", method="ROUND_ROBIN", memberIds=[anna, boris],
    ))["assignmentRule"]
    closers = (await mutate(
        live_gateway, head, CREATE_RULE, "createAssignmentRule",
        name="Closers", stage="QUALIFIED", method="LEAST_LOADED", memberIds=[boris], position=0,
        conditions={"products": ["crm"]}, onlyWorkingHours=True,
    ))["assignmentRule"]
    german = (await mutate(
        live_gateway, head, CREATE_RULE, "createAssignmentRule",
        name="German", stage="NEW", method="FIXED", memberIds=[anna], position=0, conditions={"countries": ["de"]},
    ))["assignmentRule"]

    weighted = (await mutate(
        live_gateway, head, UPDATE_RULE, "updateAssignmentRule",
        id=first["id"], version=1, name="Weighted", method="WEIGHTED_ROUND_ROBIN", position=5,
        weights=[{"memberId": anna, "weight": 3}, {"memberId": boris, "weight": 1}],
    ))["assignmentRule"]
    stale = (await live_gateway.graphql(head, UPDATE_RULE, input={"id": first["id"], "version": 1, "active": False}))
    cleared = (await live_gateway.graphql(head, UPDATE_RULE, input={"id": first["id"], "name": None}))
    stale_delete = (await live_gateway.graphql(head, DELETE_RULE, input={"id": first["id"], "version": 1}))

    assert (weighted["name"], weighted["method"], weighted["version"]) == ("Weighted", "WEIGHTED_ROUND_ROBIN", 2)
    assert sorted((w["memberId"], w["weight"]) for w in weighted["weights"]) == sorted([(anna, 3), (boris, 1)])
    assert (closers["conditions"]["products"], closers["onlyWorkingHours"]) == (["crm"], True)
    assert german["conditions"]["countries"] == ["DE"]
    assert errors_of(stale["updateAssignmentRule"]) == [(["input", "version"], "STALE_VERSION")]
    assert errors_of(cleared["updateAssignmentRule"]) == [(["input", "name"], "null")]
    assert errors_of(stale_delete["deleteAssignmentRule"]) == [(["input", "version"], "STALE_VERSION")]

    # Stage, then position, then creation; page by page.
    seen, after = [], None
    while True:
        page = (await live_gateway.graphql(head, RULES, first=1, after=after))["assignmentRules"]
        seen += [(e["node"]["name"], e["node"]["stage"], e["node"]["position"]) for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [("German", "NEW", 0), ("Weighted", "NEW", 5), ("Closers", "QUALIFIED", 0)]
    qualified = (await live_gateway.graphql(head, RULES, stage="QUALIFIED"))["assignmentRules"]["edges"]
    assert [e["node"]["name"] for e in qualified] == ["Closers"]

    deleted = await mutate(live_gateway, head, DELETE_RULE, "deleteAssignmentRule", id=first["id"], version=2)
    gone = (await live_gateway.graphql(head, DELETE_RULE, input={"id": first["id"]}))["deleteAssignmentRule"]
    nameless = (await live_gateway.graphql(head, DELETE_RULE, input={"id": "nope"}))["deleteAssignmentRule"]

    assert deleted["deletedId"] == first["id"]
    assert errors_of(gone) == [(["input", "id"], "NOT_FOUND")]
    assert errors_of(nameless) == [(["input", "id"], "NOT_FOUND")]
    assert (await live_gateway.graphql(head, RULE, id=first["id"])) == {"assignmentRule": None}


async def test_a_client_rule_for_farmers_matches_on_grades_and_products(live_gateway, head):
    team = (await mutate(live_gateway, head, CREATE_TEAM, "createTeam", name="Account management"))["team"]
    created = await mutate(
        live_gateway, head, CREATE_RULE, "createAssignmentRule",
        name="Big clients", stage="CLIENT", method="ROUND_ROBIN", teamId=team["id"],
        conditions={"grades": ["A", "B"], "products": ["crm"]},
    )
    rule = created["assignmentRule"]
    assert rule["stage"] == "CLIENT"
    assert (rule["conditions"]["grades"], rule["conditions"]["products"]) == (["A", "B"], ["crm"])
    assert rule["conditions"]["channels"] is None  # not given: matches any lead

    read = (await live_gateway.graphql(head, RULE, id=rule["id"]))["assignmentRule"]
    assert read["conditions"] == rule["conditions"]
    clients = (await live_gateway.graphql(head, RULES, stage="CLIENT"))["assignmentRules"]["edges"]
    assert [edge["node"]["name"] for edge in clients] == ["Big clients"]

