"""Qualification (BANT) through GraphQL against the real leads service: answers saved piece by piece and read on
the lead, the workspace's required answers, qualifyLead handing the lead over, and every refusal as a typed
`userErrors` entry pointing into the input sent.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from services.common.auth import Role
from services.common.testing import token_for

pytestmark = pytest.mark.usefixtures("database_url")

QUALIFICATION_FIELDS = """
  leadId budget { amount currency } budgetConfirmed decisionMaker isDecisionMaker need products timeline notes
  updatedBy updatedAt version
"""

CREATE = """
mutation Create($input: CreateLeadInput!) {
  createLead(input: $input) { lead { id status version } userErrors { field code message } }
}
"""

UPDATE = f"""
mutation Save($input: UpdateLeadQualificationInput!) {{
  updateLeadQualification(input: $input) {{
    qualification {{ {QUALIFICATION_FIELDS} }}
    lead {{ id status version qualification {{ version }} }}
    userErrors {{ field code message }}
  }}
}}
"""

QUALIFY = f"""
mutation Qualify($input: QualifyLeadInput!) {{
  qualifyLead(input: $input) {{
    lead {{ id status version qualification {{ version }} }}
    qualification {{ {QUALIFICATION_FIELDS} }}
    userErrors {{ field code message }}
  }}
}}
"""

LEAD = f"""
query Lead($id: ID!) {{
  lead(id: $id) {{
    status version
    qualification {{ {QUALIFICATION_FIELDS} }}
    history {{ statusChanges {{ fromStatus toStatus comment }} }}
  }}
}}
"""

LEADS = """
{ leads(sort: CREATED_AT_ASC) { edges { node { name qualification { need version } } } } }
"""

SETTINGS = "{ leadSettings { qualificationRequired version } }"

UPDATE_SETTINGS = """
mutation Settings($input: UpdateLeadSettingsInput!) {
  updateLeadSettings(input: $input) {
    leadSettings { qualificationRequired version }
    userErrors { field code message }
  }
}
"""

CHANGE_STATUS = """
mutation Move($input: ChangeLeadStatusInput!) {
  changeLeadStatus(input: $input) { lead { status } userErrors { field code } }
}
"""


@pytest.fixture
def admin_id() -> uuid.UUID:
    return uuid.uuid4()


@pytest.fixture
def admin(workspace: uuid.UUID, admin_id: uuid.UUID) -> str:
    return token_for(workspace, Role.admin, admin_id)


async def new_lead(gateway: Any, token: str, **fields: Any) -> dict[str, Any]:
    payload = (await gateway.graphql(token, CREATE, input={"name": "Ivan Petrov", **fields}))["createLead"]
    assert payload["userErrors"] == [], payload["userErrors"]
    lead: dict[str, Any] = payload["lead"]
    return lead


async def save(gateway: Any, token: str, **input: Any) -> dict[str, Any]:
    payload: dict[str, Any] = (await gateway.graphql(token, UPDATE, input=input))["updateLeadQualification"]
    return payload


async def qualify(gateway: Any, token: str, **input: Any) -> dict[str, Any]:
    payload: dict[str, Any] = (await gateway.graphql(token, QUALIFY, input=input))["qualifyLead"]
    return payload


async def require(gateway: Any, token: str, *answers: str) -> None:
    payload = (await gateway.graphql(token, UPDATE_SETTINGS, input={"qualificationRequired": list(answers)}))
    assert payload["updateLeadSettings"]["userErrors"] == []


def errors_of(payload: dict[str, Any]) -> list[tuple[list[str], str]]:
    return [(error["field"], error["code"]) for error in payload["userErrors"]]


async def test_answers_saved_piece_by_piece_read_back_on_the_lead(live_gateway, admin, admin_id):
    lead = await new_lead(live_gateway, admin)
    nothing = (await live_gateway.graphql(admin, LEAD, id=lead["id"]))["lead"]["qualification"]
    assert nothing == {
        "leadId": lead["id"], "budget": None, "budgetConfirmed": False, "decisionMaker": None,
        "isDecisionMaker": False, "need": None, "products": [], "timeline": None, "notes": None,
        "updatedBy": None, "updatedAt": None, "version": 0,
    }

    budget = await save(live_gateway, admin, leadId=lead["id"], version=0,
                        budget={"amount": "15000", "currency": "usd"}, budgetConfirmed=True)
    need = await save(live_gateway, admin, leadId=lead["id"], version=1,
                      need="Their reps lose leads in spreadsheets", products=["crm", "voip", "crm"])
    rest = await save(live_gateway, admin, leadId=lead["id"], decisionMaker="  Olga   Ivanova, CFO ",
                      timeline="2027-01-31", notes="Call back after the board meeting")
    cleared = await save(live_gateway, admin, leadId=lead["id"], notes=None, budgetConfirmed=None)

    assert budget["userErrors"] == []
    assert budget["qualification"]["budget"] == {"amount": "15000.00", "currency": "USD"}
    assert (budget["qualification"]["version"], budget["qualification"]["updatedBy"]) == (1, str(admin_id))
    # Saving answers leaves the lead as it was; its qualification in the payload is the one just saved.
    assert budget["lead"] == {"id": lead["id"], "status": "NEW", "version": 1, "qualification": {"version": 1}}
    assert need["qualification"]["products"] == ["crm", "voip"]
    assert rest["qualification"]["decisionMaker"] == "Olga Ivanova, CFO"
    assert (cleared["qualification"]["notes"], cleared["qualification"]["budgetConfirmed"]) == (None, False)
    read = (await live_gateway.graphql(admin, LEAD, id=lead["id"]))["lead"]
    assert read["qualification"] == cleared["qualification"]
    assert read["qualification"] | {"updatedAt": None} == {
        "leadId": lead["id"], "budget": {"amount": "15000.00", "currency": "USD"}, "budgetConfirmed": False,
        "decisionMaker": "Olga Ivanova, CFO", "isDecisionMaker": False,
        "need": "Their reps lose leads in spreadsheets", "products": ["crm", "voip"], "timeline": "2027-01-31",
        "notes": None, "updatedBy": str(admin_id), "updatedAt": None, "version": 4,
    }
    assert (read["status"], read["version"]) == ("NEW", 1)


async def test_each_lead_in_a_list_reads_its_own_answers(live_gateway, admin):
    first = await new_lead(live_gateway, admin, name="Ann")
    await new_lead(live_gateway, admin, name="Bob")
    await save(live_gateway, admin, leadId=first["id"], need="A CRM")

    edges = (await live_gateway.graphql(admin, LEADS))["leads"]["edges"]

    assert [edge["node"] for edge in edges] == [
        {"name": "Ann", "qualification": {"need": "A CRM", "version": 1}},
        {"name": "Bob", "qualification": {"need": None, "version": 0}},
    ]


async def test_qualify_is_refused_naming_each_missing_answer_and_saves_nothing(live_gateway, admin):
    lead = await new_lead(live_gateway, admin)
    await require(live_gateway, admin, "BUDGET", "AUTHORITY", "NEED", "TIMELINE")

    everything_missing = await qualify(live_gateway, admin, leadId=lead["id"])
    half_given = await qualify(live_gateway, admin, leadId=lead["id"], need="A CRM", timeline="2027-01-31")

    assert everything_missing["lead"] is None
    assert errors_of(everything_missing) == [
        (["input", "budget"], "REQUIRED"), (["input", "decisionMaker"], "REQUIRED"),
        (["input", "need"], "REQUIRED"), (["input", "timeline"], "REQUIRED"),
    ]
    assert errors_of(half_given) == [(["input", "budget"], "REQUIRED"), (["input", "decisionMaker"], "REQUIRED")]
    assert "decision maker" in half_given["userErrors"][1]["message"]
    read = (await live_gateway.graphql(admin, LEAD, id=lead["id"]))["lead"]
    assert read["status"] == "NEW"
    assert (read["qualification"]["need"], read["qualification"]["version"]) == (None, 0)


async def test_qualify_hands_the_lead_over_once_with_its_answers(live_gateway, admin):
    lead = await new_lead(live_gateway, admin)
    await save(live_gateway, admin, leadId=lead["id"], budget={"amount": "15000.5", "currency": "EUR"})
    keyed = {"leadId": lead["id"], "version": lead["version"], "need": "A CRM", "isDecisionMaker": True,
             "comment": "Ready for a demo", "idempotencyKey": "qualify-1"}

    qualified = await qualify(live_gateway, admin, **keyed)
    retry = await qualify(live_gateway, admin, **keyed)
    again = await qualify(live_gateway, admin, leadId=lead["id"])

    assert qualified["userErrors"] == []
    assert (qualified["lead"]["status"], qualified["lead"]["qualification"]) == ("QUALIFIED", {"version": 2})
    assert qualified["lead"]["version"] > lead["version"]
    answers = qualified["qualification"]
    assert (answers["budget"], answers["need"], answers["isDecisionMaker"]) == (
        {"amount": "15000.50", "currency": "EUR"}, "A CRM", True,
    )
    assert retry == qualified
    (error,) = again["userErrors"]
    assert (error["field"], error["code"]) == (["input"], "CONFLICT")
    read = (await live_gateway.graphql(admin, LEAD, id=lead["id"]))["lead"]
    assert read["status"] == "QUALIFIED"
    assert read["history"]["statusChanges"] == [
        {"fromStatus": "NEW", "toStatus": "QUALIFIED", "comment": "Ready for a demo"}
    ]


async def test_a_bad_amount_or_currency_is_a_user_error_on_that_part_of_the_budget(live_gateway, admin):
    lead = await new_lead(live_gateway, admin)
    cases = [
        ({"amount": "1.5e3", "currency": "USD"}, ["input", "budget", "amount"], "amount_format"),
        ({"amount": "15000.5", "currency": "JPY"}, ["input", "budget", "amount"], "decimal_places"),
        ({"amount": "-100", "currency": "USD"}, ["input", "budget", "amount"], "negative_amount"),
        ({"amount": "100", "currency": "XYZ"}, ["input", "budget", "currency"], "unknown_currency"),
    ]

    for budget, field, code in cases:
        saved = await save(live_gateway, admin, leadId=lead["id"], budget=budget)
        qualified = await qualify(live_gateway, admin, leadId=lead["id"], budget=budget, need="A CRM")
        assert saved["qualification"] is None
        assert errors_of(saved) == [(field, code)], budget
        assert errors_of(qualified) == [(field, code)], budget

    # A JSON number never reaches the service: the schema takes the amount as a string only.
    as_float = await live_gateway.run(
        admin, UPDATE, input={"leadId": lead["id"], "budget": {"amount": 15000.5, "currency": "USD"}}
    )
    assert "String cannot represent a non string value" in as_float["errors"][0]["message"]
    read = (await live_gateway.graphql(admin, LEAD, id=lead["id"]))["lead"]
    assert (read["status"], read["qualification"]["budget"]) == ("NEW", None)


async def test_the_settings_mutation_changes_what_is_required(live_gateway, workspace, admin):
    rep = token_for(workspace, Role.rep)
    lead = await new_lead(live_gateway, admin)
    assert (await live_gateway.graphql(rep, SETTINGS))["leadSettings"]["qualificationRequired"] == ["BUDGET", "NEED"]

    settings = (await live_gateway.graphql(admin, SETTINGS))["leadSettings"]
    changed = await live_gateway.graphql(
        admin, UPDATE_SETTINGS, input={"qualificationRequired": ["AUTHORITY"], "version": settings["version"]}
    )
    twice = await live_gateway.graphql(admin, UPDATE_SETTINGS, input={"qualificationRequired": ["NEED", "NEED"]})
    by_rep = await live_gateway.graphql(rep, UPDATE_SETTINGS, input={"qualificationRequired": []})
    without_authority = await qualify(live_gateway, admin, leadId=lead["id"], need="A CRM")

    assert changed["updateLeadSettings"]["leadSettings"] == {
        "qualificationRequired": ["AUTHORITY"], "version": settings["version"] + 1,
    }
    assert errors_of(twice["updateLeadSettings"]) == [(["input", "qualificationRequired", "1"], "duplicate")]
    assert errors_of(by_rep["updateLeadSettings"]) == [(["input"], "FORBIDDEN")]
    assert errors_of(without_authority) == [(["input", "decisionMaker"], "REQUIRED")]
    with_authority = await qualify(live_gateway, admin, leadId=lead["id"], decisionMaker="Olga, CFO")
    assert with_authority["lead"]["status"] == "QUALIFIED"

    await require(live_gateway, admin)
    other = await new_lead(live_gateway, admin, name="Maria")
    assert (await live_gateway.graphql(admin, SETTINGS))["leadSettings"]["qualificationRequired"] == []
    assert (await qualify(live_gateway, admin, leadId=other["id"]))["lead"]["status"] == "QUALIFIED"


async def test_a_stale_version_is_a_user_error_and_changes_nothing(live_gateway, admin):
    lead = await new_lead(live_gateway, admin)
    first = await save(live_gateway, admin, leadId=lead["id"], version=0, need="A CRM")
    assert first["qualification"]["version"] == 1
    moved = await live_gateway.graphql(admin, CHANGE_STATUS, input={"id": lead["id"], "status": "WORKING"})
    assert moved["changeLeadStatus"]["userErrors"] == []

    stale_answers = await save(live_gateway, admin, leadId=lead["id"], version=0, need="A phone system")
    stale_lead = await qualify(live_gateway, admin, leadId=lead["id"], version=lead["version"],
                               budget={"amount": "100", "currency": "USD"})

    assert stale_answers["qualification"] is None
    assert errors_of(stale_answers) == [(["input", "version"], "STALE_VERSION")]
    assert errors_of(stale_lead) == [(["input", "version"], "STALE_VERSION")]
    read = (await live_gateway.graphql(admin, LEAD, id=lead["id"]))["lead"]
    assert (read["status"], read["qualification"]["need"], read["qualification"]["budget"]) == (
        "WORKING", "A CRM", None,
    )


async def test_an_unknown_lead_or_a_converted_one_is_refused_on_the_input(live_gateway, workspace, admin):
    lead = await new_lead(live_gateway, admin)
    await qualify(live_gateway, admin, leadId=lead["id"], budget={"amount": "1", "currency": "USD"}, need="A CRM")
    converted = await live_gateway.graphql(admin, CHANGE_STATUS, input={"id": lead["id"], "status": "CONVERTED"})
    assert converted["changeLeadStatus"]["lead"]["status"] == "CONVERTED"
    someone_else = token_for(workspace, Role.rep)

    final = await save(live_gateway, admin, leadId=lead["id"], need="Something else")
    unknown = await save(live_gateway, admin, leadId=str(uuid.uuid4()), need="A CRM")
    malformed = await qualify(live_gateway, admin, leadId="not-a-lead")
    not_theirs = await qualify(live_gateway, someone_else, leadId=lead["id"])

    assert errors_of(final) == [(["input"], "CONFLICT")]
    assert "converted" in final["userErrors"][0]["message"]
    assert errors_of(unknown) == [(["input", "leadId"], "NOT_FOUND")]
    assert errors_of(malformed) == [(["input", "leadId"], "NOT_FOUND")]
    assert errors_of(not_theirs) == [(["input", "leadId"], "NOT_FOUND")]


async def test_qualifying_goes_through_qualify_lead_not_a_status_change(live_gateway, admin):
    lead = await new_lead(live_gateway, admin)

    moved = await live_gateway.graphql(admin, CHANGE_STATUS, input={"id": lead["id"], "status": "QUALIFIED"})

    assert moved["changeLeadStatus"]["lead"] is None
    assert errors_of(moved["changeLeadStatus"]) == [(["input", "status"], "use_qualify")]
    assert (await live_gateway.graphql(admin, LEAD, id=lead["id"]))["lead"]["status"] == "NEW"
