"""Rescoring in the background: a model change (or a request, or the nightly run) rescores every lead of the
workspace in chunks with progress anyone can follow, announces only grades that moved, stops when a newer
rescoring supersedes it, and after a crash resumes from its last checkpoint."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from services.common.auth import Role
from services.common.db import Database
from services.common.testing import token_for
from services.leads import rescore_worker, rescoring, score_store
from services.leads.rescore_worker import RescoreWorker
from services.leads.scoring_worker import ScoringWorker

pytestmark = pytest.mark.usefixtures("database_url")

MOVE_COMPANIES_TO_C = {"grades": {"a": 75, "b": 50, "c": 15}}


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(rescore_worker, "CHUNK", 2)


async def scored_leads(admin: httpx.AsyncClient, leads_db: Database) -> tuple[list[str], list[str]]:
    """Five leads with their first stored grade, all D: two with a company (20), three without (10)."""
    items = [{"name": f"Lead {i}", **({"company": "Acme"} if i < 2 else {})} for i in range(5)]
    response = await admin.post("/v1/leads:batch", json={"items": items})
    assert response.status_code == 200, response.text
    ids = [item["lead_id"] for item in response.json()["items"]]
    assert await ScoringWorker(leads_db).drain() == 5
    return ids[:2], ids[2:]


async def moved_events(admin_db) -> list[dict]:
    """lead.scored events of grade changes (not first grades)."""
    rows = await admin_db.fetch("SELECT event FROM leads.outbox WHERE type = 'voronka.lead.scored.v1' ORDER BY seq")
    events = [json.loads(r["event"])["data"] for r in rows]
    return [e for e in events if e["previous_grade"] is not None]


async def job(client: httpx.AsyncClient, job_id: str) -> dict:
    response = await client.get(f"/v1/scoring-model/rescores/{job_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_model_change_rescores_every_lead_and_announces_only_moved_grades(
    admin, leads_db, admin_db, small_chunks
):
    companies, others = await scored_leads(admin, leads_db)

    response = await admin.patch("/v1/scoring-model", json=MOVE_COMPANIES_TO_C)
    assert response.status_code == 200, response.text
    started = response.json()["rescore"]
    assert (started["reason"], started["state"], started["model_version"]) == ("model_changed", "running", 1)
    assert (started["total"], started["done"], started["changed"], started["created_by"]) == (
        5, 0, 0, str(admin.user_id)
    )

    worker = RescoreWorker(leads_db)
    assert await worker.step() == 2
    halfway = await job(admin, started["id"])
    assert (halfway["state"], halfway["done"]) == ("running", 2)
    await worker.drain()

    finished = await job(admin, started["id"])
    assert (finished["state"], finished["done"], finished["total"], finished["changed"]) == ("done", 5, 5, 2)
    assert finished["finished_at"] is not None
    moved = await moved_events(admin_db)
    assert sorted(e["lead_id"] for e in moved) == sorted(companies)
    assert {(e["previous_grade"], e["grade"], e["cause"], e["model_version"]) for e in moved} == {
        ("D", "C", "model_changed", 1)
    }
    stored = (await admin.get(f"/v1/leads/{others[0]}/score")).json()["stored"]
    assert (stored["grade"], stored["model_version"]) == ("D", 1)
    assert (await admin.get("/v1/scoring-model")).json()["rescore"]["state"] == "done"


async def test_a_superseded_rescoring_stops_and_the_new_one_finishes(admin, leads_db, admin_db, small_chunks):
    await scored_leads(admin, leads_db)
    first = (await admin.patch("/v1/scoring-model", json=MOVE_COMPANIES_TO_C)).json()["rescore"]
    worker = RescoreWorker(leads_db)
    await worker.step()

    response = await admin.post("/v1/scoring-model/rescores")
    assert response.status_code == 202, response.text
    second = response.json()
    assert response.headers["location"] == f"/v1/scoring-model/rescores/{second['id']}"
    assert (second["reason"], second["state"]) == ("requested", "running")
    await worker.drain()

    stopped = await job(admin, first["id"])
    assert (stopped["state"], stopped["done"]) == ("superseded", 2)
    assert stopped["finished_at"] is not None
    assert (await job(admin, second["id"]))["done"] == 5
    # The first job moved the leads of its first chunk, the second the rest: one announcement each.
    assert len(await moved_events(admin_db)) == 2


async def test_a_rescoring_that_crashed_resumes_after_its_last_checkpoint(
    admin, leads_db, admin_db, small_chunks, monkeypatch
):
    await scored_leads(admin, leads_db)
    started = (await admin.patch("/v1/scoring-model", json=MOVE_COMPANIES_TO_C)).json()["rescore"]
    worker = RescoreWorker(leads_db)
    await worker.step()
    checkpoint = await admin_db.fetchrow("SELECT last_lead_id, done FROM leads.rescore_jobs")

    real_store = score_store.store

    async def store_then_crash(*args, **kwargs):
        await real_store(*args, **kwargs)
        raise ConnectionResetError("the process died mid-chunk")

    monkeypatch.setattr(score_store, "store", store_then_crash)
    with pytest.raises(ConnectionResetError):
        await worker.step()
    # The chunk's scores and events rolled back with it; the checkpoint is where it was.
    assert await admin_db.fetchrow("SELECT last_lead_id, done FROM leads.rescore_jobs") == checkpoint

    monkeypatch.setattr(score_store, "store", real_store)
    # The same worker goes on (a failed chunk is retried by the loop) and so does a fresh one after a restart.
    await worker.step()
    await RescoreWorker(leads_db).drain()
    finished = await job(admin, started["id"])
    assert (finished["state"], finished["done"], finished["changed"]) == ("done", 5, 2)
    assert all(n == 1 for n in Counter(e["lead_id"] for e in await moved_events(admin_db)).values())


async def test_rescorings_are_listed_newest_first_a_page_at_a_time(admin, leads_db):
    await scored_leads(admin, leads_db)
    first = (await admin.patch("/v1/scoring-model", json=MOVE_COMPANIES_TO_C)).json()["rescore"]
    second = (await admin.post("/v1/scoring-model/rescores")).json()

    page = (await admin.get("/v1/scoring-model/rescores?limit=1")).json()
    assert [j["id"] for j in page["items"]] == [second["id"]]
    rest = (await admin.get(f"/v1/scoring-model/rescores?limit=1&cursor={page['next_cursor']}")).json()
    assert [(j["id"], j["state"]) for j in rest["items"]] == [(first["id"], "superseded")]
    assert rest["next_cursor"] is None


async def test_only_an_admin_or_head_of_sales_starts_a_rescoring_and_only_their_workspace_s(
    admin, stack, workspace
):
    started = (await admin.post("/v1/scoring-model/rescores")).json()
    async with stack.client("leads", token_for(workspace, Role.rep, uuid.uuid4())) as rep:
        refused = await rep.post("/v1/scoring-model/rescores")
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        assert (await rep.get(f"/v1/scoring-model/rescores/{started['id']}")).status_code == 200
    async with stack.client("leads", token_for(workspace, Role.head_of_sales, uuid.uuid4())) as head:
        assert (await head.post("/v1/scoring-model/rescores")).status_code == 202
    async with stack.client("leads", token_for(uuid.uuid4(), Role.admin, uuid.uuid4())) as stranger:
        hidden = await stranger.get(f"/v1/scoring-model/rescores/{started['id']}")
        assert hidden.status_code == 404
        assert hidden.headers["content-type"] == "application/problem+json"
        assert (await stranger.get("/v1/scoring-model/rescores")).json()["items"] == []


async def test_each_workspace_with_leads_is_rescored_once_a_day(admin, leads_db, admin_db, workspace):
    await scored_leads(admin, leads_db)
    assert await RescoreWorker(leads_db).start_nightly() == 1
    assert await RescoreWorker(leads_db).start_nightly() == 0  # it had one in the last 24 hours
    [nightly] = (await admin.get("/v1/scoring-model/rescores")).json()["items"]
    assert (nightly["reason"], nightly["created_by"], nightly["total"]) == ("nightly", None, 5)

    await RescoreWorker(leads_db).drain()
    assert (await job(admin, nightly["id"]))["state"] == "done"
    async with leads_db.transaction() as conn:
        tomorrow = await rescoring.start_nightly(conn, datetime.now(UTC) + timedelta(hours=25))
    assert tomorrow == [workspace]
