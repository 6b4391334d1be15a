"""Stored scores: a lead is scored again after every change that can move its score (capture, edits, qualification
answers, merges), lead.scored announces each grade change exactly once even with writers racing, and the lead
list filters by the stored grade and temperature."""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from collections import Counter

import httpx
import pytest

from services.common.db import Database, service_dsn
from services.common.ids import new_id
from services.common.settings import get_settings
from services.leads import score_store
from services.leads.rescore_worker import RescoreWorker
from services.leads.scoring_worker import ScoringWorker

pytestmark = pytest.mark.usefixtures("database_url")


async def take_in(client: httpx.AsyncClient, **fields) -> dict:
    response = await client.post("/v1/leads", json={"name": "Lead", **fields})
    assert response.status_code in (200, 201), response.text
    return response.json()


async def score_of(client: httpx.AsyncClient, lead_id: str) -> dict:
    response = await client.get(f"/v1/leads/{lead_id}/score")
    assert response.status_code == 200, response.text
    return response.json()


async def scored_events(admin_db) -> list[dict]:
    rows = await admin_db.fetch("SELECT event FROM leads.outbox WHERE type = 'voronka.lead.scored.v1' ORDER BY seq")
    return [json.loads(r["event"])["data"] for r in rows]


async def listed(client: httpx.AsyncClient, query: str) -> set[str]:
    response = await client.get(f"/v1/leads?{query}")
    assert response.status_code == 200, response.text
    return {lead["id"] for lead in response.json()["items"]}


async def waiting_on_locks(admin_db, count: int) -> None:
    """Until `count` backends of this database wait for a lock another transaction holds."""
    deadline = asyncio.get_running_loop().time() + 10
    while await admin_db.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    ) < count:
        assert asyncio.get_running_loop().time() < deadline, "the other writers never waited"
        await asyncio.sleep(0.01)


async def test_a_captured_lead_gets_its_stored_grade_and_lead_scored_shortly_after(leads, admin_db):
    # The default model: has a company +10, has a position +5, came in through the API +10 = 25, a C.
    lead = await take_in(leads, company="Acme", position="CTO")

    deadline = asyncio.get_running_loop().time() + 10
    while (score := await score_of(leads, lead["id"]))["stored"] is None:
        assert asyncio.get_running_loop().time() < deadline, "no stored score 10 s after capture"
        await asyncio.sleep(0.05)

    assert score["stored"]["score"] == score["score"] == 25
    assert (score["stored"]["grade"], score["stored"]["temperature"], score["stored"]["model_version"]) == (
        "C", "cold", 0
    )
    assert score["conversion"] is None  # no learned model in a new workspace
    [event] = await scored_events(admin_db)
    assert (event["lead_id"], event["grade"], event["previous_grade"], event["score"]) == (lead["id"], "C", None, 25)
    assert (event["cause"], event["temperature"], event["model_version"]) == ("lead_changed", "cold", 0)
    assert await admin_db.fetchval("SELECT count(*) FROM leads.score_queue") == 0


async def test_edits_rescore_the_lead_and_only_a_moved_grade_is_announced(admin, leads_db, admin_db):
    lead = await take_in(admin)  # the API touch alone: 10, a D
    assert await ScoringWorker(leads_db).drain() == 1
    assert (await score_of(admin, lead["id"]))["stored"]["score"] == 10

    response = await admin.patch(f"/v1/leads/{lead['id']}", json={"company": "Acme"})
    assert response.status_code == 200, response.text
    assert await ScoringWorker(leads_db).drain() == 1
    stored = (await score_of(admin, lead["id"]))["stored"]
    assert (stored["score"], stored["grade"]) == (20, "D")
    assert len(await scored_events(admin_db)) == 1  # 10 -> 20 is still a D: nothing to announce

    response = await admin.patch(f"/v1/leads/{lead['id']}", json={"position": "CTO"})
    assert response.status_code == 200, response.text
    await ScoringWorker(leads_db).drain()
    assert (await score_of(admin, lead["id"]))["stored"]["grade"] == "C"
    events = await scored_events(admin_db)
    assert [(e["previous_grade"], e["grade"]) for e in events] == [(None, "D"), ("D", "C")]


async def test_a_rule_on_the_country_reads_it_from_the_phone_number_in_the_stored_score(admin, leads_db):
    response = await admin.patch("/v1/scoring-model", json={"fit_rules": [
        {"label": "DACH", "attribute": "country", "op": "in", "value": ["DE", "AT", "CH"], "points": 80},
    ]})
    assert response.status_code == 200, response.text
    german = await take_in(admin, phone="+49 30 901820")
    russian = await take_in(admin, phone="+7 916 123-45-67")
    await ScoringWorker(leads_db).drain()

    assert (await score_of(admin, german["id"]))["stored"]["grade"] == "A"  # 80 + 10 for the API touch
    assert (await score_of(admin, russian["id"]))["stored"]["grade"] == "D"


async def test_saving_a_confirmed_budget_rescores_the_lead(admin, leads_db, admin_db):
    lead = await take_in(admin, company="Acme", position="CTO")
    await ScoringWorker(leads_db).drain()

    response = await admin.patch(f"/v1/leads/{lead['id']}/qualification", json={
        "budget": {"amount": "5000", "currency": "EUR"}, "budget_confirmed": True,
    })
    assert response.status_code == 200, response.text
    assert await ScoringWorker(leads_db).drain() == 1

    stored = (await score_of(admin, lead["id"]))["stored"]
    assert (stored["score"], stored["grade"]) == (40, "C")
    assert (await scored_events(admin_db))[-1]["score"] == 25  # 25 -> 40: a C either way, no new event


async def test_a_repeat_submission_and_a_hand_merge_rescore_the_survivor(admin, leads_db, admin_db):
    first = await take_in(admin, email="ann@example.com")
    other = await take_in(admin, email="bob@example.com", company="Bob's")
    await ScoringWorker(leads_db).drain()
    # The same person again: a second API touch, +10.
    await take_in(admin, email="ann@example.com")
    assert await ScoringWorker(leads_db).drain() == 1
    assert (await score_of(admin, first["id"]))["stored"]["score"] == 20

    response = await admin.post(f"/v1/leads/{first['id']}/merge", json={"other_lead_id": other["id"]})
    assert response.status_code == 200, response.text
    assert await ScoringWorker(leads_db).drain() == 2

    # Three API touches and the other's company now: 40, a C. The merged-away lead keeps no stored score.
    stored = (await score_of(admin, first["id"]))["stored"]
    assert (stored["score"], stored["grade"]) == (40, "C")
    assert await admin_db.fetchval("SELECT count(*) FROM leads.lead_scores WHERE lead_id = $1",
                                   uuid.UUID(other["id"])) == 0
    assert (await admin.get(f"/v1/leads/{other['id']}/score")).status_code == 404


@pytest.mark.parametrize("scored_before", [True, False], ids=["grade_moves", "first_grade"])
async def test_writers_racing_on_the_same_leads_announce_each_grade_change_once(
    admin, leads_db, admin_db, workspace, scored_before
):
    response = await admin.post("/v1/leads:batch", json={"items": [{"name": f"Lead {i}"} for i in range(300)]})
    assert response.json()["created"] == 300
    ids = [r["id"] for r in await admin_db.fetch("SELECT id FROM leads.leads")]
    if scored_before:
        assert await ScoringWorker(leads_db).drain() == 300
        # Every lead scores 10: a C from now on. The change also starts a rescoring.
        response = await admin.patch("/v1/scoring-model", json={"grades": {"a": 30, "b": 20, "c": 10}})
    else:
        response = await admin.post("/v1/scoring-model/rescores")
    assert response.status_code in (200, 202), response.text

    pools = [Database(service_dsn(get_settings(), "leads"), schema="leads") for _ in range(3)]
    for pool in pools:
        await pool.connect()

    async def score_all(db: Database) -> int:
        async with db.transaction() as conn:
            return (await score_store.score(conn, workspace, ids, cause="requested")).changed

    try:
        # One writer has scored the leads but not committed yet when two more (a direct one and the rescoring
        # the model change started) get to the same leads: both must wait for it and then see its grades.
        async with pools[0].transaction() as first:
            first_changed = (await score_store.score(first, workspace, ids, cause="requested")).changed
            others = asyncio.gather(score_all(pools[1]), RescoreWorker(pools[2]).drain())
            await waiting_on_locks(admin_db, 2)
        changed = [first_changed, *await others]
    finally:
        for pool in pools:
            await pool.close()

    assert changed[:2] == [300, 0]
    events = await scored_events(admin_db)
    if scored_before:
        events = [e for e in events if e["previous_grade"] is not None]
    assert Counter(e["lead_id"] for e in events) == Counter({str(i): 1 for i in ids})
    assert {(e["previous_grade"], e["grade"]) for e in events} == {("D", "C") if scored_before else (None, "D")}


async def test_leads_filter_by_stored_grade_and_temperature(admin, leads_db):
    response = await admin.patch("/v1/scoring-model", json={"fit_rules": [
        {"label": "VIP", "attribute": "tags", "op": "contains", "value": "vip", "points": 80},
        {"label": "Warm", "attribute": "tags", "op": "contains", "value": "warm", "points": 45},
    ]})
    assert response.status_code == 200, response.text
    vip = await take_in(admin, tags=["vip"])  # 90: A, hot
    warm = await take_in(admin, tags=["warm"])  # 55: B, warm
    cold = await take_in(admin)  # 10: D, cold
    await ScoringWorker(leads_db).drain()
    not_yet = await take_in(admin, tags=["vip"])  # not scored yet: matches no filter

    assert await listed(admin, "grade=A") == {vip["id"]}
    assert await listed(admin, "grade=A&grade=B") == {vip["id"], warm["id"]}
    assert await listed(admin, "temperature=cold") == {cold["id"]}
    assert await listed(admin, "grade=B&temperature=hot") == set()
    assert await listed(admin, "grade=A&temperature=hot&tag=vip") == {vip["id"]}
    assert not_yet["id"] in await listed(admin, "tag=vip")
    # Keyset pages through a filter: one lead a page, newest first.
    page = (await admin.get("/v1/leads?grade=A&grade=B&limit=1")).json()
    assert [lead["id"] for lead in page["items"]] == [warm["id"]]
    rest = (await admin.get(f"/v1/leads?grade=A&grade=B&limit=1&cursor={page['next_cursor']}")).json()
    assert [lead["id"] for lead in rest["items"]] == [vip["id"]]

    bad = await admin.get("/v1/leads?grade=E")
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
    assert "grade" in bad.text


async def test_with_a_learned_model_the_stored_score_and_the_event_carry_its_probability(
    admin, leads_db, admin_db, workspace
):
    model_id = new_id()
    # A model trained elsewhere: log-odds 2 for a lead with a company, so p = 1 / (1 + e^-2).
    await admin_db.execute(
        """
        INSERT INTO leads.conversion_models (workspace_id, id, state, reason, examples, positives, intercept,
                                             coefficients)
        VALUES ($1, $2, 'active', 'trained', 500, 60, 0, '{"has_company": 2.0}')
        """,
        workspace, model_id,
    )
    lead = await take_in(admin, company="Acme")
    await ScoringWorker(leads_db).drain()

    score = await score_of(admin, lead["id"])
    assert score["conversion"]["probability"] == pytest.approx(1 / (1 + math.exp(-2)))
    assert score["conversion"]["model_id"] == str(model_id)
    assert [(f["feature"], f["contribution"]) for f in score["conversion"]["factors"]] == [("has_company", 2.0)]
    stored = await admin_db.fetchrow("SELECT probability, conversion_model_id FROM leads.lead_scores")
    assert (stored["probability"], stored["conversion_model_id"]) == (pytest.approx(0.8808, abs=1e-4), model_id)
    [event] = await scored_events(admin_db)
    assert event["probability"] == pytest.approx(0.8808, abs=1e-4)


async def test_a_rescoring_that_read_a_lead_before_an_edit_does_not_overwrite_the_edit_s_score(
    admin, leads_db, admin_db, workspace
):
    lead = await take_in(admin)  # 10, a D
    await ScoringWorker(leads_db).drain()
    async with leads_db.connection() as conn:
        # A rescoring chunk reads the lead as it is now...
        stale = await score_store.compute(conn, workspace, [uuid.UUID(lead["id"])])
    # ...an edit makes it a C, and the ScoringWorker stores that first...
    await admin.patch(f"/v1/leads/{lead['id']}", json={"company": "Acme", "position": "CTO"})
    await ScoringWorker(leads_db).drain()
    # ...then the chunk is written.
    async with leads_db.transaction() as conn:
        assert (await score_store.store(conn, stale, cause="nightly")).changed == 0

    stored = (await score_of(admin, lead["id"]))["stored"]
    assert (stored["score"], stored["grade"]) == (25, "C")
    assert [(e["previous_grade"], e["grade"]) for e in await scored_events(admin_db)] == [(None, "D"), ("D", "C")]
