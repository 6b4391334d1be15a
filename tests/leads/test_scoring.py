"""Rule scoring: the arithmetic (services.leads.scoring) on plain values — properties with hypothesis, each kind
of fit rule on a known lead — and over HTTP the workspace's scoring model and a lead's score with its breakdown."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.auth import Role
from services.common.testing import token_for
from services.leads import scoring
from services.leads.scoring import EngagementRule, Facts, FitRule, Grades, Model, Temperature, Touch

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)

points = st.integers(min_value=-100, max_value=100)
fit_rules = st.lists(
    st.builds(FitRule, label=st.just("r"), attribute=st.sampled_from(["company", "position"]),
              op=st.just("exists"), value=st.none(), points=points),
    max_size=8,
)
engagement_rules = st.lists(
    st.builds(EngagementRule, label=st.just("e"), event=st.sampled_from(scoring.EVENTS), points=points), max_size=4
)
touches = st.lists(
    st.builds(Touch, event=st.sampled_from(scoring.EVENTS),
              at=st.integers(min_value=-5, max_value=400).map(lambda d: NOW - timedelta(days=d))),
    max_size=6,
)
half_lives = st.floats(min_value=0.1, max_value=365, allow_nan=False)
facts = st.builds(Facts, company=st.one_of(st.none(), st.just("Acme")), position=st.one_of(st.none(), st.just("CTO")))


@st.composite
def grades(draw: st.DrawFn) -> Grades:
    c = draw(st.integers(0, 98))
    b = draw(st.integers(c + 1, 99))
    return Grades(a=draw(st.integers(b + 1, 100)), b=b, c=c)


@st.composite
def temperatures(draw: st.DrawFn) -> Temperature:
    warm = draw(st.integers(0, 99))
    return Temperature(hot=draw(st.integers(warm + 1, 100)), warm=warm)


models = st.builds(
    Model, fit_rules=fit_rules.map(tuple), engagement_rules=engagement_rules.map(tuple), half_life_days=half_lives,
    grades=grades(), temperature=temperatures(),
)


@given(facts, touches, models)
def test_the_score_is_always_between_0_and_100(lead, lead_touches, model):
    result = scoring.compute(lead, lead_touches, model, NOW)
    assert 0 <= result.score <= 100


@given(facts, touches, models)
def test_grade_and_temperature_follow_the_thresholds(lead, lead_touches, model):
    result = scoring.compute(lead, lead_touches, model, NOW)
    g, t = model.grades, model.temperature
    expected_grade = "A" if result.score >= g.a else "B" if result.score >= g.b else "C" if result.score >= g.c else "D"
    expected_temperature = "hot" if result.score >= t.hot else "warm" if result.score >= t.warm else "cold"
    assert (result.grade, result.temperature) == (expected_grade, expected_temperature)


@given(facts, touches, models)
def test_the_score_is_the_clamped_sum_of_its_breakdown(lead, lead_touches, model):
    result = scoring.compute(lead, lead_touches, model, NOW)
    total = sum(f.points for f in result.fit) + sum(e.decayed_points for e in result.engagement)
    assert result.score == round(min(max(total, 0), 100))
    # Brute force: every rule that applies is listed once; every touch once per rule of its event.
    assert len(result.fit) == sum(1 for r in model.fit_rules if getattr(lead, r.attribute) is not None)
    assert len(result.engagement) == sum(1 for t in lead_touches for r in model.engagement_rules if r.event == t.event)


@given(st.integers(-100, 100), half_lives, st.floats(min_value=0, max_value=1000))
def test_engagement_halves_at_each_half_life(points_, half_life, age):
    assert scoring.decay(points_, half_life, half_life) == pytest.approx(points_ / 2)
    later = scoring.decay(points_, age + half_life, half_life)
    assert later == pytest.approx(scoring.decay(points_, age, half_life) / 2)
    assert scoring.decay(points_, 0, half_life) == points_


@given(facts, touches, models, st.data())
def test_more_points_on_a_rule_never_lower_the_score(lead, lead_touches, model, data):
    rules = list(model.fit_rules) + list(model.engagement_rules)
    if not rules:
        return
    index = data.draw(st.integers(0, len(rules) - 1))
    extra = data.draw(st.integers(0, 50))
    before = scoring.compute(lead, lead_touches, model, NOW).score
    if index < len(model.fit_rules):
        fit = list(model.fit_rules)
        rule = fit[index]
        fit[index] = FitRule(rule.label, rule.attribute, rule.op, rule.value, rule.points + extra)
        bigger = Model(tuple(fit), model.engagement_rules, model.half_life_days, model.grades, model.temperature)
    else:
        engagement = list(model.engagement_rules)
        rule = engagement[index - len(model.fit_rules)]
        engagement[index - len(model.fit_rules)] = EngagementRule(rule.label, rule.event, rule.points + extra)
        bigger = Model(model.fit_rules, tuple(engagement), model.half_life_days, model.grades, model.temperature)
    assert scoring.compute(lead, lead_touches, bigger, NOW).score >= before


LEAD = Facts(
    company="Acme Robotics", position="CTO", channel="web_form", source="Landing", country="DE",
    tags=("VIP", "expo"), budget=(Decimal("15000.00"), "EUR"), budget_confirmed=True,
    custom={"industry": "Manufacturing", "employees": "250", "empty": ""},
)


@pytest.mark.parametrize(
    ("attribute", "op", "value", "expected"),
    [
        ("company", "exists", None, True),
        ("company", "equals", "acme robotics", True),
        ("company", "contains", "ROBOT", True),
        ("company", "contains", "bank", False),
        ("position", "in", ("ceo", "cto"), True),
        ("channel", "equals", "ads", False),
        ("country", "in", ("DE", "AT"), True),
        ("tags", "contains", "vip", True),
        ("tags", "in", ("fair", "expo"), True),
        ("tags", "contains", "vi", False),
        ("budget", "gte", (Decimal("10000"), "EUR"), True),
        ("budget", "lte", (Decimal("10000"), "EUR"), False),
        ("budget", "gte", (Decimal("10000"), "USD"), False),
        ("budget_confirmed", "equals", False, False),
        ("custom.industry", "equals", "manufacturing", True),
        ("custom.employees", "gte", Decimal("100"), True),
        ("custom.employees", "lte", Decimal("100"), False),
        ("custom.empty", "exists", None, False),
        ("custom.missing", "lte", Decimal("100"), False),
    ],
)
def test_each_kind_of_fit_rule(attribute, op, value, expected):
    assert scoring.applies(FitRule("r", attribute, op, value, 10), LEAD) is expected


def test_a_lead_without_the_attribute_matches_no_rule_on_it():
    empty = Facts()
    for attribute in ("company", "tags", "budget", "budget_confirmed", "custom.industry"):
        assert not scoring.applies(FitRule("r", attribute, "exists", None, 10), empty)


def test_negative_rules_show_as_negative_and_the_score_does_not_go_below_zero():
    model = Model(fit_rules=(FitRule("Competitor", "company", "contains", "acme", -40),))
    result = scoring.compute(LEAD, [], model, NOW)
    assert [(f.label, f.points) for f in result.fit] == [("Competitor", -40)]
    assert (result.score, result.grade, result.temperature) == (0, "D", "cold")


# ---- over HTTP ------------------------------------------------------------------------------------------


def problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return response.json()


def fields_named(response: httpx.Response) -> list[tuple[str, str]]:
    return [(e["field"], e["code"]) for e in problem(response, 422)["errors"]]


async def new_lead(client: httpx.AsyncClient, **fields) -> dict:
    response = await client.post("/v1/leads", json={"name": "Ivan Petrov", **fields})
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_workspace_starts_with_the_default_model(leads):
    response = await leads.get("/v1/scoring-model")
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == '"0"'
    model = response.json()
    assert model["version"] == 0
    assert [(r["attribute"], r["op"], r["points"]) for r in model["fit_rules"]] == [
        ("company", "exists", 10), ("position", "exists", 5), ("budget_confirmed", "exists", 15),
    ]
    assert model["half_life_days"] == 14
    assert model["grades"] == {"a": 75, "b": 50, "c": 25}
    assert model["temperature"] == {"hot": 70, "warm": 40}


async def test_a_score_explains_each_rule_and_how_much_engagement_decayed(leads, admin_db):
    saved = await leads.patch(
        "/v1/scoring-model",
        json={
            "fit_rules": [
                {"label": "Has a company", "attribute": "company", "op": "exists", "points": 10},
                {"label": "Big budget", "attribute": "budget", "op": "gte",
                 "value": {"amount": "10000", "currency": "eur"}, "points": 30},
                {"label": "Germany", "attribute": "country", "op": "in", "value": ["de", "at"], "points": 10},
                {"label": "Student", "attribute": "position", "op": "contains", "value": "student", "points": -20},
                {"label": "Banking", "attribute": "custom.industry", "op": "equals", "value": "Banking",
                 "points": 15},
            ],
            "engagement_rules": [
                {"label": "Form", "event": "form_submitted", "points": 20},
                {"label": "API", "event": "api_submitted", "points": 10},
            ],
            "half_life_days": 7,
        },
        headers={"If-Match": '"0"'},
    )
    assert saved.status_code == 200, saved.text
    assert saved.headers["etag"] == '"1"'
    assert saved.json()["fit_rules"][1]["value"] == {"amount": "10000.00", "currency": "EUR"}
    assert saved.json()["fit_rules"][2]["value"] == ["DE", "AT"]

    fields = [{"key": "industry", "label": "Industry", "type": "text"}]
    assert (await leads.patch("/v1/lead-settings", json={"custom_fields": fields})).status_code == 200
    lead = await new_lead(leads, company="Acme", position="Student intern", phone="+49 30 1234567",
                          custom={"industry": "retail"})
    url = f"/v1/leads/{lead['id']}"
    answers = await leads.patch(f"{url}/qualification", json={"budget": {"amount": "15000", "currency": "EUR"}})
    assert answers.status_code == 200, answers.text
    # A form submitted two weeks (two half-lives) ago: its 20 points are down to 5.
    touched_at = datetime.now(UTC) - timedelta(days=14)
    await admin_db.execute(
        "INSERT INTO leads.lead_touches (workspace_id, id, lead_id, via, touched_at) "
        "VALUES ($1, $2, $3, 'webhook', $4)",
        uuid.UUID(lead["workspace_id"]), uuid.uuid4(), uuid.UUID(lead["id"]), touched_at,
    )

    response = await leads.get(f"{url}/score")
    assert response.status_code == 200, response.text
    score = response.json()
    assert [(f["label"], f["attribute"], f["points"]) for f in score["fit"]] == [
        ("Has a company", "company", 10), ("Big budget", "budget", 30), ("Germany", "country", 10),
        ("Student", "position", -20),
    ]
    engagement = sorted(score["engagement"], key=lambda e: e["at"])
    assert [(e["event"], e["points"]) for e in engagement] == [("form_submitted", 20), ("api_submitted", 10)]
    assert engagement[0]["decayed_points"] == pytest.approx(5, abs=0.01)
    assert engagement[1]["decayed_points"] == pytest.approx(10, abs=0.01)
    # 10 + 30 + 10 - 20 + 5 + 10
    assert (score["score"], score["grade"], score["temperature"]) == (45, "C", "warm")
    assert score["model_version"] == 1
    assert score["lead_id"] == lead["id"]


async def test_a_lead_scores_by_the_default_model_until_the_workspace_saves_one(leads):
    lead = await new_lead(leads, company="Acme", position="CTO")
    score = (await leads.get(f"/v1/leads/{lead['id']}/score")).json()
    assert [f["points"] for f in score["fit"]] == [10, 5]
    assert [(e["event"], e["points"]) for e in score["engagement"]] == [("api_submitted", 10)]
    assert (score["score"], score["grade"], score["model_version"]) == (25, "C", 0)


async def test_bad_rules_are_422_naming_the_field(leads):
    rules = [
        {"label": "ok", "attribute": "company", "op": "exists", "points": 5},
        {"label": "unknown", "attribute": "size", "op": "exists", "points": 5},
        {"label": "bad op", "attribute": "company", "op": "gte", "value": "5", "points": 5},
        {"label": "no money", "attribute": "budget", "op": "gte", "value": "10", "points": 5},
        {"label": "in needs a list", "attribute": "channel", "op": "in", "value": "ads", "points": 5},
        {"label": "exists takes none", "attribute": "tags", "op": "exists", "value": "x", "points": 5},
    ]
    assert fields_named(await leads.patch("/v1/scoring-model", json={"fit_rules": rules})) == [
        ("fit_rules[1].attribute", "unknown_attribute"), ("fit_rules[2].op", "op_not_allowed"),
        ("fit_rules[3].value", "money"), ("fit_rules[4].value", "list_type"), ("fit_rules[5].value", "not_expected"),
    ]
    parse = await leads.patch("/v1/scoring-model", json={
        "fit_rules": [rules[0], {"label": "x", "attribute": "company", "op": "like", "points": 500}],
        "engagement_rules": [{"label": "x", "event": "call_answered", "points": 1}],
        "half_life_days": 0,
    })
    assert sorted(field for field, _ in fields_named(parse)) == [
        "engagement_rules[0].event", "fit_rules[1].op", "fit_rules[1].points", "half_life_days",
    ]
    order = await leads.patch("/v1/scoring-model", json={"grades": {"a": 50, "b": 50, "c": 10},
                                                        "temperature": {"hot": 30, "warm": 40}})
    assert fields_named(order) == [("grades", "order"), ("temperature", "order")]
    assert fields_named(await leads.patch("/v1/scoring-model", json={"fit_rules": None})) == [("fit_rules", "null")]
    assert (await leads.get("/v1/scoring-model")).json()["version"] == 0


async def test_a_stale_if_match_changes_nothing(leads):
    first = await leads.patch("/v1/scoring-model", json={"half_life_days": 30}, headers={"If-Match": '"0"'})
    assert first.status_code == 200, first.text
    problem(await leads.patch("/v1/scoring-model", json={"half_life_days": 3}, headers={"If-Match": '"0"'}), 412)
    current = (await leads.get("/v1/scoring-model")).json()
    assert (current["half_life_days"], current["version"]) == (30, 1)
    # A part not sent keeps its value.
    assert len(current["fit_rules"]) == 3


async def test_a_head_of_sales_changes_the_model_and_a_rep_only_reads_it(stack, workspace):
    await stack.start("leads")
    async with stack.client("leads", token_for(workspace, Role.head_of_sales, uuid.uuid4())) as head, \
            stack.client("leads", token_for(workspace, Role.rep, uuid.uuid4())) as rep:
        problem(await rep.patch("/v1/scoring-model", json={"half_life_days": 3}), 403)
        changed = await head.patch("/v1/scoring-model", json={"half_life_days": 3})
        assert changed.status_code == 200, changed.text
        assert (await rep.get("/v1/scoring-model")).json()["half_life_days"] == 3


async def test_a_rep_sees_the_score_of_their_own_leads_only(stack, workspace):
    await stack.start("leads")
    anna, boris = uuid.uuid4(), uuid.uuid4()
    async with stack.client("leads", token_for(workspace, Role.rep, anna)) as as_anna, \
            stack.client("leads", token_for(workspace, Role.rep, boris)) as as_boris:
        lead = await new_lead(as_anna)
        assert (await as_anna.get(f"/v1/leads/{lead['id']}/score")).status_code == 200
        problem(await as_boris.get(f"/v1/leads/{lead['id']}/score"), 404)
        problem(await as_anna.get(f"/v1/leads/{uuid.uuid4()}/score"), 404)
