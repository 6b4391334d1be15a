"""Leads through GraphQL against the real leads service: taking leads in, finding them, editing them, moving them
along the lifecycle and merging them, with every refusal coming back as a typed `userErrors` entry.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from services.common.auth import Role
from services.common.testing import token_for

pytestmark = pytest.mark.usefixtures("database_url")

LEAD_FIELDS = """
  id name email phone company position notes tags custom source sourceId channel
  utm { source medium campaign term content }
  ownerId status disqualificationReason mergedIntoId createdBy createdAt updatedAt statusChangedAt version
"""

CREATE = f"""
mutation Create($input: CreateLeadInput!) {{
  createLead(input: $input) {{
    lead {{ {LEAD_FIELDS} }}
    outcome notice
    userErrors {{ field code message }}
  }}
}}
"""

UPDATE = """
mutation Update($input: UpdateLeadInput!) {
  updateLead(input: $input) { lead { id name company tags custom ownerId version } userErrors { field code message } }
}
"""

CHANGE_STATUS = """
mutation Move($input: ChangeLeadStatusInput!) {
  changeLeadStatus(input: $input) {
    lead { id status disqualificationReason version }
    userErrors { field code message }
  }
}
"""

MERGE = """
mutation Merge($input: MergeLeadsInput!) {
  mergeLeads(input: $input) { lead { id email phone tags version } userErrors { field code message } }
}
"""

LEAD = f"query Lead($id: ID!) {{ lead(id: $id) {{ {LEAD_FIELDS} }} }}"

LEADS = """
query Leads($filter: LeadFilter, $sort: LeadSort, $first: Int, $after: String) {
  leads(filter: $filter, sort: $sort, first: $first, after: $after) {
    edges { cursor node { id name status } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

HISTORY = """
query History($id: ID!) {
  lead(id: $id) {
    status mergedInto { id name }
    history {
      touches { via source channel utm { source } data touchedAt }
      statusChanges { fromStatus toStatus reason comment changedBy }
      merges { survivorId mergedId fields }
    }
  }
}
"""


@pytest.fixture
def admin(workspace: uuid.UUID) -> str:
    return token_for(workspace, Role.admin)


async def create(gateway: Any, token: str, **fields: Any) -> dict[str, Any]:
    payload = (await gateway.graphql(token, CREATE, input=fields))["createLead"]
    assert payload["userErrors"] == [], payload["userErrors"]
    return payload


def names(connection: dict[str, Any]) -> list[str]:
    return [edge["node"]["name"] for edge in connection["edges"]]


async def test_a_created_lead_reads_back_with_every_field_and_is_found_by_filters(live_gateway, admin):
    payload = await create(
        live_gateway, admin,
        name="  Ivan Petrov ", email="Ivan.Petrov@Example.COM", phone="+7 (495) 123-45-67", company="Acme",
        position="CTO", notes="Met at the expo", tags=["vip", "expo"], source="Spring webinar",
        channel="WEB_FORM", utm={"source": "google", "campaign": "spring"}, idempotencyKey="form-1",
    )
    lead = payload["lead"]
    await create(live_gateway, admin, name="Maria Sidorova", email="maria@example.com", channel="REFERRAL")

    assert payload["outcome"] == "CREATED"
    assert payload["notice"] is None
    assert lead["name"] == "Ivan Petrov"
    assert lead["email"] == "ivan.petrov@example.com"
    assert lead["phone"] == "+74951234567"
    assert (lead["status"], lead["channel"], lead["version"]) == ("NEW", "WEB_FORM", 1)
    assert lead["tags"] == ["vip", "expo"]
    assert lead["custom"] == {}
    assert lead["utm"] == {"source": "google", "medium": None, "campaign": "spring", "term": None, "content": None}
    assert (await live_gateway.graphql(admin, LEAD, id=lead["id"]))["lead"] == lead

    async def found(**variables: Any) -> list[str]:
        return names((await live_gateway.graphql(admin, LEADS, **variables))["leads"])

    assert await found() == ["Maria Sidorova", "Ivan Petrov"]
    assert await found(sort="CREATED_AT_ASC") == ["Ivan Petrov", "Maria Sidorova"]
    assert await found(filter={"tag": "vip"}) == ["Ivan Petrov"]
    assert await found(filter={"channel": "REFERRAL"}) == ["Maria Sidorova"]
    assert await found(filter={"search": "petrov"}) == ["Ivan Petrov"]
    assert await found(filter={"search": "495 123"}) == ["Ivan Petrov"]
    assert await found(filter={"status": ["WORKING", "QUALIFIED"]}) == []
    assert await found(filter={"unassigned": True}) == ["Maria Sidorova", "Ivan Petrov"]
    assert await found(filter={"createdAfter": lead["createdAt"]}) == ["Maria Sidorova", "Ivan Petrov"]
    assert await found(filter={"createdBefore": lead["createdAt"]}) == []


async def test_paging_a_filtered_list_follows_the_filter_across_pages(live_gateway, admin):
    for i in range(5):
        await create(live_gateway, admin, name=f"Tagged {i}", tags=["expo"])
        await create(live_gateway, admin, name=f"Other {i}")

    seen: list[str] = []
    after = None
    while True:
        connection = (await live_gateway.graphql(admin, LEADS, filter={"tag": "expo"}, first=2, after=after))["leads"]
        seen += names(connection)
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]

    assert seen == [f"Tagged {i}" for i in reversed(range(5))]


async def test_a_cursor_from_another_sort_or_a_short_search_is_an_error_naming_the_argument(live_gateway, admin):
    for name in ("Ann", "Bob", "Cy"):
        await create(live_gateway, admin, name=name)
    page = (await live_gateway.graphql(admin, LEADS, first=1))["leads"]

    other_sort = await live_gateway.run(admin, LEADS, sort="UPDATED_AT_DESC", after=page["pageInfo"]["endCursor"])
    short = await live_gateway.run(admin, LEADS, filter={"search": "ab"})

    assert other_sort["errors"][0]["message"] == "after is not a valid cursor"
    assert short["errors"][0]["message"].startswith("filter.search: Search for at least 3 characters")
    assert short["data"] == {"leads": None}


async def test_the_same_email_twice_merges_into_the_first_lead(live_gateway, admin):
    first = (await create(live_gateway, admin, name="Ivan", email="ivan@example.com", source="Webinar"))["lead"]

    again = await create(live_gateway, admin, name="Ivan P.", email="IVAN@example.com", phone="+74951234567",
                         source="Expo", channel="EVENT")

    assert again["outcome"] == "MERGED"
    assert again["lead"]["id"] == first["id"]
    assert again["lead"]["phone"] == "+74951234567"  # the known lead took what it lacked
    history = (await live_gateway.graphql(admin, HISTORY, id=first["id"]))["lead"]["history"]
    assert [(t["via"], t["source"]) for t in history["touches"]] == [("API", "Webinar"), ("API", "Expo")]
    assert history["touches"][1]["channel"] == "EVENT"


async def test_invalid_input_names_each_input_field_in_camel_case(live_gateway, admin):
    body = await live_gateway.graphql(
        admin, CREATE, input={"name": "Ivan", "email": "nope", "ownerId": "not-a-uuid", "utm": {"source": "x" * 201}}
    )

    payload = body["createLead"]
    assert payload["lead"] is None
    assert payload["outcome"] is None
    by_field = {tuple(e["field"]): e["code"] for e in payload["userErrors"]}
    assert set(by_field) == {("input", "email"), ("input", "ownerId"), ("input", "utm", "source")}
    assert by_field[("input", "ownerId")] == "uuid_parsing"


async def test_a_custom_field_error_keeps_the_workspaces_key(live_gateway, admin):
    settings = await live_gateway.graphql(
        admin,
        """
        mutation($input: UpdateLeadSettingsInput!) {
          updateLeadSettings(input: $input) { leadSettings { customFields version } userErrors { field code } }
        }
        """,
        input={"customFields": [{"key": "deal_size", "label": "Deal size", "type": "number"}]},
    )
    assert settings["updateLeadSettings"]["userErrors"] == []

    body = await live_gateway.graphql(admin, CREATE, input={"name": "Ivan", "custom": {"deal_size": "lots"}})

    (error,) = body["createLead"]["userErrors"]
    assert error["field"] == ["input", "custom", "deal_size"]
    created = await create(live_gateway, admin, name="Ivan", custom={"deal_size": 1500})
    assert created["lead"]["custom"] == {"deal_size": 1500}


async def test_update_changes_only_the_fields_given_and_null_clears_one(live_gateway, admin):
    lead = (await create(live_gateway, admin, name="Ivan", company="Acme", tags=["vip"]))["lead"]

    updated = (await live_gateway.graphql(admin, UPDATE, input={"id": lead["id"], "company": None}))["updateLead"]

    assert updated["userErrors"] == []
    assert updated["lead"] == {
        "id": lead["id"], "name": "Ivan", "company": None, "tags": ["vip"], "custom": {}, "ownerId": None,
        "version": 2,
    }


async def test_an_update_with_a_stale_version_is_a_stale_version_user_error(live_gateway, admin):
    lead = (await create(live_gateway, admin, name="Ivan"))["lead"]
    first = await live_gateway.graphql(admin, UPDATE, input={"id": lead["id"], "version": 1, "name": "Ivan P."})
    assert first["updateLead"]["lead"]["version"] == 2

    stale = await live_gateway.graphql(admin, UPDATE, input={"id": lead["id"], "version": 1, "name": "Ivan Petrov"})

    assert stale["updateLead"]["lead"] is None
    (error,) = stale["updateLead"]["userErrors"]
    assert (error["field"], error["code"]) == (["input", "version"], "STALE_VERSION")
    assert (await live_gateway.graphql(admin, LEAD, id=lead["id"]))["lead"]["name"] == "Ivan P."


async def test_taking_another_leads_email_is_a_conflict_on_that_field(live_gateway, admin):
    await create(live_gateway, admin, name="Ivan", email="ivan@example.com")
    maria = (await create(live_gateway, admin, name="Maria", email="maria@example.com"))["lead"]

    body = await live_gateway.graphql(admin, UPDATE, input={"id": maria["id"], "email": "ivan@example.com"})

    (error,) = body["updateLead"]["userErrors"]
    assert (error["field"], error["code"]) == (["input", "email"], "CONFLICT")


async def test_an_illegal_status_move_is_a_conflict_and_a_legal_one_is_recorded(live_gateway, admin):
    lead = (await create(live_gateway, admin, name="Ivan"))["lead"]

    illegal = await live_gateway.graphql(admin, CHANGE_STATUS, input={"id": lead["id"], "status": "CONVERTED"})
    no_reason = await live_gateway.graphql(admin, CHANGE_STATUS, input={"id": lead["id"], "status": "DISQUALIFIED"})
    moved = await live_gateway.graphql(
        admin, CHANGE_STATUS, input={"id": lead["id"], "status": "WORKING", "comment": "Called", "version": 1}
    )
    disqualified = await live_gateway.graphql(
        admin, CHANGE_STATUS, input={"id": lead["id"], "status": "DISQUALIFIED", "reason": "no_budget"}
    )

    (error,) = illegal["changeLeadStatus"]["userErrors"]
    assert (error["field"], error["code"]) == (["input", "status"], "CONFLICT")
    assert "allowed next" in error["message"]
    (error,) = no_reason["changeLeadStatus"]["userErrors"]
    assert (error["field"], error["code"]) == (["input", "reason"], "missing")
    assert moved["changeLeadStatus"] == {
        "lead": {"id": lead["id"], "status": "WORKING", "disqualificationReason": None, "version": 2},
        "userErrors": [],
    }
    assert disqualified["changeLeadStatus"]["lead"]["disqualificationReason"] == "no_budget"
    changes = (await live_gateway.graphql(admin, HISTORY, id=lead["id"]))["lead"]["history"]["statusChanges"]
    assert [(c["fromStatus"], c["toStatus"], c["reason"], c["comment"]) for c in changes] == [
        ("NEW", "WORKING", None, "Called"),
        ("WORKING", "DISQUALIFIED", "no_budget", None),
    ]


async def test_merging_folds_the_other_lead_into_the_survivor_once(live_gateway, admin):
    ivan = (await create(live_gateway, admin, name="Ivan", email="ivan@example.com", tags=["expo"]))["lead"]
    twin = (await create(live_gateway, admin, name="I. Petrov", phone="+74951234567", tags=["vip"]))["lead"]

    merged = await live_gateway.graphql(admin, MERGE, input={"survivorId": ivan["id"], "otherId": twin["id"]})
    again = await live_gateway.graphql(admin, MERGE, input={"survivorId": ivan["id"], "otherId": twin["id"]})
    unknown = await live_gateway.graphql(admin, MERGE, input={"survivorId": ivan["id"], "otherId": str(uuid.uuid4())})
    itself = await live_gateway.graphql(admin, MERGE, input={"survivorId": ivan["id"], "otherId": ivan["id"]})

    survivor = merged["mergeLeads"]["lead"]
    assert merged["mergeLeads"]["userErrors"] == []
    assert (survivor["id"], survivor["email"], survivor["phone"]) == (ivan["id"], "ivan@example.com", "+74951234567")
    assert survivor["tags"] == ["expo", "vip"]
    (error,) = again["mergeLeads"]["userErrors"]
    assert error["code"] == "CONFLICT"
    (error,) = unknown["mergeLeads"]["userErrors"]
    assert (error["field"], error["code"]) == (["input", "otherId"], "NOT_FOUND")
    (error,) = itself["mergeLeads"]["userErrors"]
    assert error["field"] == ["input", "otherId"]
    folded = (await live_gateway.graphql(admin, HISTORY, id=twin["id"]))["lead"]
    assert folded["status"] == "MERGED"
    assert folded["mergedInto"] == {"id": ivan["id"], "name": "Ivan"}
    (merge,) = folded["history"]["merges"]
    assert (merge["survivorId"], merge["mergedId"]) == (ivan["id"], twin["id"])
    assert merge["fields"]["phone"]["from"] == twin["id"]


async def test_a_rep_sees_and_changes_only_their_own_leads(live_gateway, workspace, admin):
    anna, boris = uuid.uuid4(), uuid.uuid4()
    anna_token = token_for(workspace, Role.rep, anna)
    boris_token = token_for(workspace, Role.rep, boris)
    head = token_for(workspace, Role.head_of_sales)
    annas = (await create(live_gateway, anna_token, name="Ivan", email="ivan@example.com"))["lead"]
    assert annas["ownerId"] == str(anna)

    seen_by_boris = await live_gateway.graphql(boris_token, LEAD, id=annas["id"])
    listed_for_boris = await live_gateway.graphql(boris_token, LEADS)
    edit_by_boris = await live_gateway.graphql(boris_token, UPDATE, input={"id": annas["id"], "name": "Mine"})
    handing_over = await live_gateway.graphql(anna_token, UPDATE, input={"id": annas["id"], "ownerId": str(boris)})
    for_someone_else = await live_gateway.graphql(
        boris_token, CREATE, input={"name": "Maria", "ownerId": str(anna)}
    )

    assert seen_by_boris == {"lead": None}
    assert listed_for_boris["leads"]["edges"] == []
    (error,) = edit_by_boris["updateLead"]["userErrors"]
    assert (error["field"], error["code"]) == (["input", "id"], "NOT_FOUND")
    (error,) = handing_over["updateLead"]["userErrors"]
    assert (error["field"], error["code"]) == (["input", "ownerId"], "FORBIDDEN")
    (error,) = for_someone_else["createLead"]["userErrors"]
    assert (error["field"], error["code"]) == (["input", "ownerId"], "FORBIDDEN")
    assert names((await live_gateway.graphql(head, LEADS))["leads"]) == ["Ivan"]


async def test_a_reps_submission_of_another_reps_lead_merges_without_showing_it(live_gateway, workspace):
    anna_token = token_for(workspace, Role.rep, uuid.uuid4())
    boris_token = token_for(workspace, Role.rep, uuid.uuid4())
    annas = (await create(live_gateway, anna_token, name="Ivan", email="ivan@example.com"))["lead"]

    payload = await create(live_gateway, boris_token, name="Ivan", email="ivan@example.com", source="Cold call")

    assert payload["outcome"] == "MERGED"
    assert payload["lead"] is None
    assert "another rep" in payload["notice"]
    touches = (await live_gateway.graphql(anna_token, HISTORY, id=annas["id"]))["lead"]["history"]["touches"]
    assert [t["source"] for t in touches] == [None, "Cold call"]


async def test_a_retried_create_with_the_same_key_returns_the_first_lead(live_gateway, admin):
    keyed = {"name": "Dan", "email": "dan@example.com", "idempotencyKey": "form-7f3a"}

    first = await create(live_gateway, admin, **keyed)
    retry = await create(live_gateway, admin, **keyed)
    misuse = await live_gateway.graphql(admin, CREATE, input={**keyed, "name": "Not Dan"})

    assert retry == first
    (error,) = misuse["createLead"]["userErrors"]
    assert (error["field"], error["code"]) == (["input", "idempotencyKey"], "reused")


async def test_lead_settings_are_read_by_everyone_and_changed_by_admins_at_the_version_read(live_gateway, workspace):
    query = "{ leadSettings { defaultRegion disqualificationReasons customFields version } }"
    mutation = """
    mutation($input: UpdateLeadSettingsInput!) {
      updateLeadSettings(input: $input) { leadSettings { defaultRegion version } userErrors { field code } }
    }
    """
    admin = token_for(workspace, Role.admin)
    rep = token_for(workspace, Role.rep)

    settings = (await live_gateway.graphql(rep, query))["leadSettings"]
    by_rep = await live_gateway.graphql(rep, mutation, input={"defaultRegion": "RU"})
    bad = await live_gateway.graphql(admin, mutation, input={"disqualificationReasons": ["No Budget"]})
    changed = await live_gateway.graphql(admin, mutation, input={"defaultRegion": "ru", "version": settings["version"]})
    stale = await live_gateway.graphql(admin, mutation, input={"defaultRegion": "DE", "version": settings["version"]})

    assert "no_budget" in settings["disqualificationReasons"]
    assert by_rep["updateLeadSettings"]["userErrors"] == [{"field": ["input"], "code": "FORBIDDEN"}]
    assert bad["updateLeadSettings"]["userErrors"] == [
        {"field": ["input", "disqualificationReasons", "0"], "code": "invalid"}
    ]
    assert changed["updateLeadSettings"]["leadSettings"]["defaultRegion"] == "RU"
    assert stale["updateLeadSettings"]["userErrors"] == [{"field": ["input", "version"], "code": "STALE_VERSION"}]
