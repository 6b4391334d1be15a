"""Rule scoring through GraphQL against the real leads service: the default model, a changed model read back and
reflected in a lead's score and its breakdown, and refusals as typed `userErrors` pointing into the input sent.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from services.common.auth import Role
from services.common.testing import token_for

pytestmark = pytest.mark.usefixtures("database_url")

MODEL_FIELDS = """
  fitRules { label attribute op value points }
  engagementRules { label event points }
  halfLifeDays grades { a b c } temperature { hot warm } version
"""

MODEL = f"{{ scoringModel {{ {MODEL_FIELDS} }} }}"

UPDATE = f"""
mutation Update($input: UpdateScoringModelInput!) {{
  updateScoringModel(input: $input) {{
    scoringModel {{ {MODEL_FIELDS} }}
    userErrors {{ field code message }}
  }}
}}
"""

CREATE = """
mutation Create($input: CreateLeadInput!) {
  createLead(input: $input) { lead { id } userErrors { field code message } }
}
"""

SCORE = """
query Score($id: ID!) {
  lead(id: $id) {
    score {
      score grade temperature modelVersion computedAt
      fit { label attribute points }
      engagement { label event at points decayedPoints }
    }
  }
}
"""


@pytest.fixture
def admin(workspace: uuid.UUID) -> str:
    return token_for(workspace, Role.admin, uuid.uuid4())


async def update(gateway: Any, token: str, **input: Any) -> dict[str, Any]:
    payload: dict[str, Any] = (await gateway.graphql(token, UPDATE, input=input))["updateScoringModel"]
    return payload


def errors_of(payload: dict[str, Any]) -> list[tuple[list[str], str]]:
    return [(error["field"], error["code"]) for error in payload["userErrors"]]


async def test_workspace_without_a_saved_model_reads_the_default(live_gateway, admin):
    model = (await live_gateway.graphql(admin, MODEL))["scoringModel"]

    assert model["version"] == 0
    assert [(r["attribute"], r["op"], r["value"], r["points"]) for r in model["fitRules"]] == [
        ("company", "EXISTS", None, 10),
        ("position", "EXISTS", None, 5),
        ("budget_confirmed", "EXISTS", None, 15),
    ]
    assert [(r["event"], r["points"]) for r in model["engagementRules"]] == [
        ("FORM_SUBMITTED", 20),
        ("API_SUBMITTED", 10),
        ("IMPORTED", 5),
    ]
    assert model["halfLifeDays"] == 14
    assert model["grades"] == {"a": 75, "b": 50, "c": 25}
    assert model["temperature"] == {"hot": 70, "warm": 40}


async def test_changed_model_is_read_back_and_scores_the_lead_with_its_breakdown(live_gateway, admin):
    created = (await live_gateway.graphql(admin, CREATE, input={"name": "Ivan Petrov", "company": "Acme GmbH"}))
    assert created["createLead"]["userErrors"] == []
    lead_id = created["createLead"]["lead"]["id"]

    payload = await update(
        live_gateway,
        admin,
        version=0,
        fitRules=[
            {"label": "Has a company", "attribute": "company", "op": "EXISTS", "points": 40},
            {"label": "Acme", "attribute": "company", "op": "CONTAINS", "value": "acme", "points": 25},
            {"label": "DACH", "attribute": "country", "op": "IN", "value": ["de", "at"], "points": 5},
        ],
        engagementRules=[{"label": "Came in through the API", "event": "API_SUBMITTED", "points": 20}],
        grades={"a": 80, "b": 60, "c": 30},
        temperature={"hot": 90, "warm": 50},
    )

    assert payload["userErrors"] == []
    model = payload["scoringModel"]
    assert model["version"] == 1
    assert model["fitRules"][2] == {
        "label": "DACH", "attribute": "country", "op": "IN", "value": ["DE", "AT"], "points": 5,
    }
    assert model["halfLifeDays"] == 14  # not sent: kept
    assert (await live_gateway.graphql(admin, MODEL))["scoringModel"] == model

    score = (await live_gateway.graphql(admin, SCORE, id=lead_id))["lead"]["score"]
    assert score["fit"] == [
        {"label": "Has a company", "attribute": "company", "points": 40},
        {"label": "Acme", "attribute": "company", "points": 25},
    ]
    [engagement] = score["engagement"]
    assert (engagement["label"], engagement["event"], engagement["points"]) == (
        "Came in through the API", "API_SUBMITTED", 20,
    )
    assert 19.9 <= engagement["decayedPoints"] <= 20  # just touched: next to nothing has decayed
    assert score["score"] == 85
    assert (score["grade"], score["temperature"], score["modelVersion"]) == ("A", "WARM", 1)


async def test_invalid_rule_is_a_user_error_naming_the_rule_and_field(live_gateway, admin):
    payload = await update(
        live_gateway,
        admin,
        fitRules=[
            {"label": "Has a company", "attribute": "company", "op": "EXISTS", "points": 10},
            {"label": "Big budget", "attribute": "budget", "op": "GTE", "value": {"amount": "10000"}, "points": 30},
            {"label": "Tagged", "attribute": "tags", "op": "GTE", "value": 5, "points": 5},
        ],
        grades={"a": 20, "b": 50, "c": 10},
    )

    assert payload["scoringModel"] is None
    assert sorted(errors_of(payload)) == [
        (["input", "fitRules", "1", "value"], "money"),
        (["input", "fitRules", "2", "op"], "op_not_allowed"),
        (["input", "grades"], "order"),
    ]
    nulled = await update(live_gateway, admin, halfLifeDays=None)
    assert errors_of(nulled) == [(["input", "halfLifeDays"], "null")]
    assert (await live_gateway.graphql(admin, MODEL))["scoringModel"]["version"] == 0  # nothing saved


async def test_rep_cannot_change_the_scoring_model(live_gateway, workspace):
    rep = token_for(workspace, Role.rep)

    payload = await update(live_gateway, rep, halfLifeDays=7)

    assert errors_of(payload) == [(["input"], "FORBIDDEN")]
    assert (await live_gateway.graphql(rep, MODEL))["scoringModel"]["halfLifeDays"] == 14  # reps still read it


async def test_change_on_a_stale_version_is_refused(live_gateway, admin):
    first = await update(live_gateway, admin, version=0, halfLifeDays=7)
    assert first["userErrors"] == []

    stale = await update(live_gateway, admin, version=0, halfLifeDays=30)

    assert errors_of(stale) == [(["input", "version"], "STALE_VERSION")]
    assert (await live_gateway.graphql(admin, MODEL))["scoringModel"]["halfLifeDays"] == 7
