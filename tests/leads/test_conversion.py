"""The learned conversion model: features and prediction on plain values (properties with hypothesis, against
scikit-learn itself), training on synthetic histories whose answer is known, and over HTTP with real PostgreSQL
the whole path — deal.won / deal.lost delivered to the leads service's inbox, retraining, /v1/scoring/model."""

from __future__ import annotations

import asyncio
import math
import random
import threading
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.auth import Role
from services.common.testing import deliver_events, eventually, token_for
from services.leads import conversion, conversion_training, score_inputs, scoring
from services.leads.conversion import Predictor
from services.leads.conversion_training import Example
from services.leads.conversion_worker import ConversionTrainer
from services.leads.score_inputs import LeadInputs

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
CHANNELS = ("referral", "web_form", "ads", "cold_list")


# ---- synthetic leads and histories ------------------------------------------------------------------------


def synthetic_lead(rng: random.Random, channel: str) -> LeadInputs:
    """A lead whose every attribute but the channel is drawn at random (noise)."""
    facts = scoring.Facts(
        company=rng.choice([None, "Acme"]), position=rng.choice([None, "Head of Sales", "CTO", "Sales Director"]),
        channel=channel, source=rng.choice(["google", "yandex", "expo"]), country=rng.choice(["RU", "KZ", "DE"]),
        tags=tuple(rng.sample(["blue", "green", "red"], rng.randint(0, 2))),
        custom={"size": rng.choice(["s", "m", "l"]), "ref": str(rng.random())},
    )
    touches = tuple(
        scoring.Touch("form_submitted", NOW - timedelta(days=rng.randint(1, 30))) for _ in range(rng.randint(0, 3))
    )
    return LeadInputs(uuid.uuid4(), None, "new", NOW, facts, touches, rng.random() < 0.5, rng.random() < 0.5)


def history(size: int, *, signal: bool, seed: int) -> list[Example]:
    """Referral leads win 80% and the rest 10% (signal), or everyone wins 30% whatever they are (noise)."""
    rng = random.Random(seed)
    examples = []
    for _ in range(size):
        channel = rng.choice(CHANNELS)
        p = (0.8 if channel == "referral" else 0.1) if signal else 0.3
        examples.append(Example(synthetic_lead(rng, channel), NOW, rng.random() < p))
    return examples


def lead_with(touches=(), **facts) -> LeadInputs:
    """A lead with an email, no phone, and these facts and touches."""
    return LeadInputs(uuid.uuid4(), None, "new", NOW, scoring.Facts(**facts), tuple(touches), True, False)


def tracks(bucket: dict) -> bool:
    """Observed within three binomial standard errors (plus 0.05) of predicted."""
    p, n = bucket["predicted"], bucket["count"]
    return abs(bucket["observed"] - p) <= 3 * math.sqrt(p * (1 - p) / n) + 0.05


# ---- features -----------------------------------------------------------------------------------------------


def test_a_lead_s_features_name_its_attributes_and_activity():
    lead = lead_with(
        company="Acme", position="Head of Sales", channel="Referral", source=" Expo ", country="KZ",
        tags=("VIP", "vip", "partner"), budget=(Decimal("15000.00"), "USD"), budget_confirmed=True,
        custom={"size": "L", "notes": {"nested": True}},
        touches=[scoring.Touch("form_submitted", NOW - timedelta(days=1))] * 3
        + [scoring.Touch("imported", NOW + timedelta(days=1))],
    )
    assert conversion.categories(lead) == [
        ("channel", "referral"), ("source", "expo"), ("country", "kz"),
        ("position_word", "head"), ("position_word", "of"), ("position_word", "sales"),
        ("tag", "vip"), ("tag", "partner"), ("custom.size", "l"), ("budget", "USD:1e4"),
    ]
    assert conversion.measures(lead, NOW) == {
        "has_company": 1.0, "has_position": 1.0, "has_email": 1.0, "budget_confirmed": 1.0,
        "touches.form_submitted": math.log1p(3),  # the import tomorrow has not happened yet
    }
    assert conversion.label("budget=USD:1e4") == "Budget of the order of 10,000 USD"
    assert conversion.label("channel=(rare)") == "Channel is a rare one"
    assert conversion.label("custom.size=l") == "Custom field size is l"


touch_days = st.lists(st.integers(min_value=-30, max_value=30), max_size=8)


@given(touch_days, st.integers(min_value=-30, max_value=30))
def test_activity_counts_only_touches_up_to_the_cutoff(days, cutoff_day):
    """Leakage: what a lead did after its outcome began is not a sign of the outcome."""
    until = NOW + timedelta(days=cutoff_day)
    lead = lead_with(touches=[scoring.Touch("form_submitted", NOW + timedelta(days=d)) for d in days])
    before = sum(1 for d in days if d <= cutoff_day)
    expected = math.log1p(before) if before else None
    assert conversion.measures(lead, until).get("touches.form_submitted") == expected


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.sampled_from(["x", "y"])), max_size=120))
def test_a_category_seen_in_fewer_than_5_examples_folds_into_the_rare_bucket(draws):
    examples = [Example(lead_with(channel=channel, tags=(tag,)), NOW, False) for channel, tag in draws]
    known = conversion_training.vocabulary(examples)
    for attribute, values in (("channel", [c for c, _ in draws]), ("tag", [t for _, t in draws])):
        for value in set(values):
            frequent = values.count(value) >= conversion_training.MIN_CATEGORY_EXAMPLES
            assert (f"{attribute}={value}" in known) is frequent
            if not frequent:
                assert f"{attribute}=(rare)" in known
    for row in conversion_training.rows_of(examples, known):
        assert all(name in known for name in row if "=" in name)
        assert sum(1 for name in row if name.startswith("channel=")) == 1


def test_a_custom_field_with_many_distinct_values_is_left_out():
    examples = [Example(lead_with(custom={"id": str(i), "size": "sml"[i % 3]}), NOW, False) for i in range(60)]
    known = conversion_training.vocabulary(examples)
    assert {name for name in known if name.startswith("custom.")} == {"custom.size=s", "custom.size=m", "custom.size=l"}


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=10_000))
def test_prediction_from_stored_coefficients_equals_scikit_learn_s(seed):
    examples = history(150, signal=True, seed=seed)
    known = conversion_training.vocabulary(examples)
    rows = conversion_training.rows_of(examples, known)
    fitted = conversion_training.estimator().fit(rows, [e.won for e in examples])
    regression = fitted.named_steps["logisticregression"]
    names = fitted.named_steps["dictvectorizer"].get_feature_names_out()
    predictor = Predictor(
        uuid.uuid4(), NOW, float(regression.intercept_[0]),
        {str(n): float(w) for n, w in zip(names, regression.coef_[0], strict=True)},
    )
    expected = fitted.predict_proba(rows)[:, 1]
    for example, p in zip(examples, expected, strict=True):
        assert predictor.probability(example.inputs, NOW) == pytest.approx(p, abs=1e-12)
    # A lead with a category nobody had is read like the rare ones were.
    unseen = lead_with(channel="carrier pigeon")
    assert predictor.features(unseen, NOW).keys() <= set(predictor.coefficients)


@given(st.dictionaries(st.sampled_from(["channel=referral", "tag=vip", "has_company", "has_email"]),
                       st.floats(min_value=-5, max_value=5), min_size=1),
       st.floats(min_value=-3, max_value=3))
def test_the_explanation_adds_up_to_the_probability(weights, intercept):
    predictor = Predictor(uuid.uuid4(), NOW, intercept, weights)
    lead = lead_with(company="Acme", channel="referral", tags=("vip",))
    factors = predictor.explain(lead, NOW, top=10)
    logit = intercept + sum(f.contribution for f in factors)
    assert predictor.probability(lead, NOW) == pytest.approx(1 / (1 + math.exp(-logit)))
    assert [abs(f.contribution) for f in factors] == sorted((abs(f.contribution) for f in factors), reverse=True)


@given(st.lists(st.tuples(st.floats(min_value=0, max_value=1), st.booleans()), max_size=200))
def test_calibration_buckets_hold_every_prediction_once(pairs):
    buckets = conversion_training.calibration([p for p, _ in pairs], [w for _, w in pairs])
    assert len(buckets) == 10
    assert sum(b["count"] for b in buckets) == len(pairs)
    for b in buckets:
        inside = [(p, w) for p, w in pairs if b["from"] <= p < b["to"] or (b["to"] == 1.0 and p == 1.0)]
        assert b["count"] == len(inside)
        if inside:
            assert b["predicted"] == pytest.approx(sum(p for p, _ in inside) / len(inside))
            assert b["observed"] == pytest.approx(sum(w for _, w in inside) / len(inside))
        else:
            assert b["predicted"] is None
            assert b["observed"] is None


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_the_nightly_run_is_the_next_0200_utc(now):
    nightly = conversion.next_nightly(now)
    assert now < nightly <= now + timedelta(days=1)
    assert (nightly.hour, nightly.minute, nightly.second, nightly.microsecond) == (2, 0, 0, 0)


# ---- training on synthetic histories ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_a_strong_signal_is_found_and_noise_is_not(seed):
    training = conversion_training.train(history(300, signal=True, seed=seed))
    assert training.state == "active", training.reason
    assert training.auc is not None
    assert training.auc > 0.75
    referral = training.coefficients["channel=referral"]
    noise = {name: w for name, w in training.coefficients.items() if not name.startswith("channel=")}
    assert referral > 1.5
    assert max(abs(w) for w in noise.values()) < referral / 3


@pytest.mark.parametrize("seed", range(5))
def test_outcomes_independent_of_the_lead_give_no_signal(seed):
    training = conversion_training.train(history(300, signal=False, seed=seed))
    assert training.state == "no_signal", training.reason


def test_the_minimum_history_is_100_leads_with_20_of_each_outcome():
    rng = random.Random(7)

    def examples(won: int, lost: int) -> list[Example]:
        return [Example(synthetic_lead(rng, "referral"), NOW, i < won) for i in range(won + lost)]

    for won, lost in ((19, 200), (200, 19), (30, 69)):
        training = conversion_training.train(examples(won, lost))
        assert training.state == "insufficient_history"
        assert f"{won + lost} leads" in training.reason
        assert "at least 100" in training.reason
        assert training.coefficients == {}
        assert training.auc is None
    assert conversion_training.train(examples(20, 80)).state != "insufficient_history"


def test_leads_with_nothing_to_learn_from_give_no_signal():
    nothing = LeadInputs(uuid.uuid4(), None, "new", NOW, scoring.Facts(), (), has_email=False, has_phone=False)
    training = conversion_training.train([Example(nothing, NOW, i % 3 == 0) for i in range(120)])
    assert training.state == "no_signal"
    assert "anything to learn from" in training.reason


# ---- over HTTP, with the service's real inbox -------------------------------------------------------------


def deal_event(
    workspace: uuid.UUID, lead_id: str | None, *, won: bool, at: datetime, deal_id: uuid.UUID | None = None
) -> dict:
    kind = "won" if won else "lost"
    data = {
        "deal_id": str(deal_id or uuid.uuid4()), "workspace_id": str(workspace), "lead_id": lead_id,
        "pipeline_id": str(uuid.uuid4()), "stage_id": str(uuid.uuid4()), "title": "Deal",
        f"{kind}_at": at.isoformat(), **({} if won else {"reason": "price"}),
    }
    return {
        "specversion": "1.0", "id": str(uuid.uuid4()), "source": "/voronka/deals",
        "type": f"voronka.deal.{kind}.v1", "time": at.isoformat(), "workspaceid": str(workspace), "data": data,
    }


async def deliver(stack, *events: dict) -> None:
    """Signed, as the deals service's dispatcher delivers them, in one batch."""
    async with httpx.AsyncClient(base_url=stack.url("leads")) as client:
        await deliver_events(client, *events)


async def create_leads(client: httpx.AsyncClient, items: list[dict]) -> list[str]:
    ids: list[str] = []
    for start in range(0, len(items), 1000):
        response = await client.post("/v1/leads:batch", json={"items": items[start:start + 1000]})
        assert response.status_code == 200, response.text
        ids += [item["lead_id"] for item in response.json()["items"]]
    return ids


async def synthetic_history(stack, client, workspace, *, size: int, signal: bool, seed: int) -> None:
    """`size` leads with a random channel and a random colour tag, each with one deal won or lost: referral 80%
    and the rest 10% (signal), or 30% whatever the lead (noise)."""
    rng = random.Random(seed)
    leads = [{"name": f"Lead {i}", "channel": rng.choice(CHANNELS), "tags": [rng.choice(["blue", "green"])]}
             for i in range(size)]
    ids = await create_leads(client, leads)
    now = datetime.now(UTC)
    events = []
    for lead, lead_id in zip(leads, ids, strict=True):
        p = (0.8 if lead["channel"] == "referral" else 0.1) if signal else 0.3
        events.append(deal_event(workspace, lead_id, won=rng.random() < p, at=now))
    await deliver(stack, *events)


async def current_model(client: httpx.AsyncClient) -> dict:
    response = await client.get("/v1/scoring/model")
    assert response.status_code == 200, response.text
    return response.json()


async def retrain(client: httpx.AsyncClient) -> dict:
    response = await client.post("/v1/scoring/model/retrain")
    assert response.status_code == 202, response.text
    assert response.headers["location"] == "/v1/scoring/model"
    return response.json()


async def test_a_workspace_whose_referrals_win_learns_it_and_rescores(stack, leads, workspace, leads_db, admin_db):
    # The service runs its own trainer here: a retrain request wakes it.
    await synthetic_history(stack, leads, workspace, size=300, signal=True, seed=1)
    await retrain(leads)
    model = await eventually(lambda: current_model(leads), lambda m: m["id"] is not None)
    assert model["state"] == "active", model["reason"]
    assert model["auc"] > 0.75
    assert 0 < model["brier"] < 0.25
    assert (model["examples"], model["minimum"]) == (300, {"examples": 100, "per_class": 20})
    weights = {f["feature"]: f["weight"] for f in model["top_features"]}
    assert model["top_features"][0]["feature"] == "channel=referral"
    assert model["top_features"][0]["label"] == "Channel is referral"
    assert weights["channel=referral"] > 1.5
    assert all(abs(weights.get(f"tag={colour}", 0)) < weights["channel=referral"] / 3 for colour in ("blue", "green"))
    buckets = model["calibration"]
    assert sum(b["count"] for b in buckets) == 300
    assert all(tracks(b) for b in buckets if b["count"] >= 10), buckets
    mean_predicted = sum(b["predicted"] * b["count"] for b in buckets if b["count"]) / 300
    assert mean_predicted == pytest.approx(model["positives"] / 300, abs=0.03)
    # The outcomes arrived moments before the training: in case it missed one, the night trains again.
    assert model["pending_retrain"]["requested_by"] is None
    assert datetime.fromisoformat(model["pending_retrain"]["due_at"]) == conversion.next_nightly(datetime.now(UTC))
    # Stored probabilities follow: the training started a rescoring of the workspace.
    job = await admin_db.fetchrow("SELECT reason FROM leads.rescore_jobs WHERE workspace_id = $1", workspace)
    assert job["reason"] == "conversion_model_trained"

    referral, web_form = await create_leads(leads, [{"name": "New R", "channel": "referral", "tags": ["blue"]},
                                                    {"name": "New W", "channel": "web_form", "tags": ["blue"]}])
    async with leads_db.connection() as conn:
        predictor = await conversion.load_active(conn, workspace)
        inputs = await score_inputs.load(conn, workspace, [uuid.UUID(referral), uuid.UUID(web_form)])
    assert predictor is not None
    assert predictor.id == uuid.UUID(model["id"])
    p_referral = predictor.probability(inputs[uuid.UUID(referral)], datetime.now(UTC))
    p_web_form = predictor.probability(inputs[uuid.UUID(web_form)], datetime.now(UTC))
    assert p_referral > 0.6 > 0.25 > p_web_form
    assert predictor.explain(inputs[uuid.UUID(referral)], datetime.now(UTC))[0].feature == "channel=referral"


async def test_outcomes_that_do_not_depend_on_the_lead_give_no_signal_and_no_predictor(
    stack, admin, workspace, leads_db
):
    await synthetic_history(stack, admin, workspace, size=300, signal=False, seed=2)
    await retrain(admin)
    assert await ConversionTrainer(leads_db).drain() == 1
    model = await current_model(admin)
    assert model["state"] == "no_signal", model["reason"]
    assert "rules alone" in model["reason"]
    async with leads_db.connection() as conn:
        assert await conversion.load_active(conn, workspace) is None


async def test_too_little_history_says_how_little(stack, admin, workspace, leads_db):
    before = await current_model(admin)
    assert (before["state"], before["id"], before["pending_retrain"]) == ("untrained", None, None)
    assert "at least 100" in before["reason"]
    assert before["minimum"] == {"examples": 100, "per_class": 20}
    await synthetic_history(stack, admin, workspace, size=40, signal=True, seed=3)
    await retrain(admin)
    await ConversionTrainer(leads_db).drain()
    model = await current_model(admin)
    assert model["state"] == "insufficient_history"
    assert "40 leads have a known outcome" in model["reason"]
    assert "at least 100" in model["reason"]
    assert model["auc"] is None
    assert model["top_features"] == []
    assert model["calibration"] == []


async def test_a_deal_outcome_asks_for_the_nightly_retraining(stack, admin, workspace, leads_db):
    [lead_id] = await create_leads(admin, [{"name": "Won"}])
    await deliver(stack, deal_event(workspace, lead_id, won=True, at=datetime.now(UTC)))
    pending = (await current_model(admin))["pending_retrain"]
    assert pending["requested_by"] is None
    assert datetime.fromisoformat(pending["due_at"]) == conversion.next_nightly(datetime.now(UTC))
    # Not due yet: the trainer leaves it for the night.
    assert await ConversionTrainer(leads_db).drain() == 0
    # A person asking brings it forward to now, and it is theirs.
    asked = await retrain(admin)
    assert datetime.fromisoformat(asked["due_at"]) <= datetime.now(UTC)
    assert asked["requested_by"] is not None
    assert await ConversionTrainer(leads_db).drain() == 1
    model = await current_model(admin)
    assert model["trained_by"] == asked["requested_by"]


async def test_a_deal_outcome_is_recorded_while_the_workspace_trains_and_learned_the_next_night(
    stack, admin, workspace, leads_db, admin_db, monkeypatch
):
    training, release = threading.Event(), threading.Event()
    real_train = conversion_training.train

    def slow_train(examples):
        training.set()
        release.wait(timeout=10)
        return real_train(examples)

    monkeypatch.setattr(conversion_training, "train", slow_train)
    [lead_id] = await create_leads(admin, [{"name": "During"}])
    await retrain(admin)
    step = asyncio.create_task(ConversionTrainer(leads_db).step())
    await asyncio.to_thread(training.wait, 10)
    # The trainer holds the workspace's request; the event is applied without waiting for it.
    await asyncio.wait_for(deliver(stack, deal_event(workspace, lead_id, won=True, at=datetime.now(UTC))), 3)
    release.set()
    assert await step == 1
    model = await current_model(admin)
    assert model["examples"] == 0  # the outcome came too late for this training...
    assert datetime.fromisoformat(model["pending_retrain"]["due_at"]) == conversion.next_nightly(datetime.now(UTC))
    assert await admin_db.fetchval("SELECT count(*) FROM leads.lead_outcomes") == 1  # ...and is learned tonight


async def test_a_training_that_fails_is_tried_again_the_next_night_not_in_a_loop(admin, leads_db, monkeypatch):
    def broken(examples):
        raise RuntimeError("boom")

    monkeypatch.setattr(conversion_training, "train", broken)
    await retrain(admin)
    assert await ConversionTrainer(leads_db).drain() == 1
    model = await current_model(admin)
    assert model["id"] is None
    assert datetime.fromisoformat(model["pending_retrain"]["due_at"]) == conversion.next_nightly(datetime.now(UTC))


async def test_a_redelivered_deal_event_is_applied_once(stack, admin, workspace, admin_db):
    [lead_id] = await create_leads(admin, [{"name": "Twice"}])
    event = deal_event(workspace, lead_id, won=True, at=datetime.now(UTC))
    await deliver(stack, event)
    first = await admin_db.fetchrow("SELECT * FROM leads.lead_outcomes WHERE workspace_id = $1", workspace)
    await deliver(stack, event, event)
    # The same outcome again under a new event id (a producer retry that minted a new id) changes nothing either.
    await deliver(stack, {**event, "id": str(uuid.uuid4())})
    rows = await admin_db.fetch("SELECT * FROM leads.lead_outcomes WHERE workspace_id = $1", workspace)
    assert [dict(r) for r in rows] == [dict(first)]
    assert first["outcome"] == "won"
    assert str(first["lead_id"]) == lead_id


async def test_an_older_deal_event_does_not_overwrite_a_newer_outcome(stack, admin, workspace, admin_db):
    [lead_id] = await create_leads(admin, [{"name": "Reopened"}])
    deal = uuid.uuid4()
    now = datetime.now(UTC)

    async def outcome() -> str:
        return await admin_db.fetchval("SELECT outcome FROM leads.lead_outcomes WHERE deal_id = $1", deal)

    await deliver(stack, deal_event(workspace, lead_id, won=True, at=now, deal_id=deal))
    await deliver(stack, deal_event(workspace, lead_id, won=False, at=now - timedelta(hours=1), deal_id=deal))
    assert await outcome() == "won"
    # Reopened and lost later: the newer outcome replaces the older.
    await deliver(stack, deal_event(workspace, lead_id, won=False, at=now + timedelta(seconds=1), deal_id=deal))
    assert await outcome() == "lost"


async def test_a_deal_without_a_lead_is_ignored(stack, admin, workspace, admin_db):
    now = datetime.now(UTC)
    await deliver(stack, deal_event(workspace, None, won=True, at=now), deal_event(workspace, None, won=False, at=now))
    assert await admin_db.fetchval("SELECT count(*) FROM leads.lead_outcomes") == 0
    assert (await current_model(admin))["pending_retrain"] is None


async def test_disqualified_leads_without_a_deal_are_examples_that_did_not_convert(stack, admin, workspace, leads_db):
    ids = await create_leads(admin, [{"name": f"L{i}", "channel": "referral"} for i in range(30)])
    now = datetime.now(UTC)
    await deliver(stack, *(deal_event(workspace, lead_id, won=True, at=now) for lead_id in ids[:10]))
    await deliver(stack, deal_event(workspace, ids[10], won=False, at=now))
    for lead_id in ids[10:]:
        response = await admin.post(f"/v1/leads/{lead_id}/status", json={"status": "disqualified", "reason": "spam"})
        assert response.status_code == 200, response.text
    async with leads_db.connection() as conn:
        examples = await conversion_training.load_examples(conn, workspace)
    assert sorted((str(e.inputs.lead_id), e.won) for e in examples) == sorted(
        [(i, True) for i in ids[:10]] + [(i, False) for i in ids[10:]]
    )
    # Activity counts up to when the outcome began: the deal's decision, or the disqualification.
    disqualified = {e.inputs.lead_id: e.until for e in examples if not e.won}
    assert disqualified[uuid.UUID(ids[10])] == now
    assert all(now < until <= datetime.now(UTC) for lead, until in disqualified.items() if lead != uuid.UUID(ids[10]))


async def test_leads_disqualified_since_the_last_training_ask_for_the_nightly_run(admin, leads_db):
    ids = await create_leads(admin, [{"name": f"L{i}"} for i in range(3)])
    await admin.post(f"/v1/leads/{ids[0]}/status", json={"status": "disqualified", "reason": "spam"})
    await retrain(admin)
    trainer = ConversionTrainer(leads_db)
    assert await trainer.drain() == 1
    assert (await current_model(admin))["pending_retrain"] is None
    assert await trainer.sweep() == 0  # nothing new since that training
    for lead_id in ids[1:]:
        response = await admin.post(f"/v1/leads/{lead_id}/status", json={"status": "disqualified", "reason": "spam"})
        assert response.status_code == 200, response.text
    assert await trainer.sweep() == 1
    pending = (await current_model(admin))["pending_retrain"]
    assert datetime.fromisoformat(pending["due_at"]) == conversion.next_nightly(datetime.now(UTC))
    assert await trainer.drain() == 0  # not before the night


async def test_only_an_admin_or_a_head_of_sales_retrains(stack, admin, workspace):
    async with stack.client("leads", token_for(workspace, Role.rep)) as rep:
        refused = await rep.post("/v1/scoring/model/retrain")
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        assert (await rep.get("/v1/scoring/model")).status_code == 200  # everyone reads
    async with stack.client("leads", token_for(workspace, Role.head_of_sales)) as head:
        key = {"Idempotency-Key": "retrain-1"}
        first = await head.post("/v1/scoring/model/retrain", headers=key)
        again = await head.post("/v1/scoring/model/retrain", headers=key)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"


async def test_the_history_lists_every_training_newest_first(stack, admin, leads_db):
    trained = []
    for _ in range(3):
        await retrain(admin)
        await ConversionTrainer(leads_db).drain()
        model = await current_model(admin)
        assert model["pending_retrain"] is None  # no outcome came in meanwhile: nothing to catch up on
        trained.append(model["id"])
    first = (await admin.get("/v1/scoring/model/history", params={"limit": 2})).json()
    rest = (await admin.get("/v1/scoring/model/history", params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert [t["id"] for t in first["items"] + rest["items"]] == trained[::-1]
    assert rest["next_cursor"] is None
    assert all(t["state"] == "insufficient_history" for t in first["items"])
    bad = await admin.get("/v1/scoring/model/history", params={"cursor": "nonsense!"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "cursor"
