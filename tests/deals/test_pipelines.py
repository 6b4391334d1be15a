"""Pipelines and their stages as admins, heads of sales, reps and other workspaces see them."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from services.common.auth import Role
from services.common.testing import token_for


def stage(name: str, probability: int, phase: str = "pre_sale", **fields) -> dict:
    return {
        "name": name, "probability": probability, "phase": phase, "expected_result": f"{name} done",
        "required_actions": [f"Do {name}"], "rotting_days": 7, **fields,
    }


def small_pipeline(name: str = "Partners") -> dict:
    return {
        "name": name, "audience": ["partners"],
        "stages": [
            stage("Intro", 20), stage("Offer", 50, "closing", exit_criteria=["amount"]),
            stage("Won", 100, "closing", is_won=True, exit_criteria=["amount"], rotting_days=None),
            stage("Delivery", 100, "post_sale"),
        ],
    }


def fields_named(response: httpx.Response) -> list[str]:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return [e["field"] for e in response.json().get("errors", [])]


async def create(client: httpx.AsyncClient, body: dict) -> httpx.Response:
    response = await client.post("/v1/pipelines", json=body)
    assert response.status_code == 201, response.text
    return response


# ---- the default pipeline -----------------------------------------------------------------------------------


async def test_a_new_workspace_gets_the_classic_b2b_pipeline_with_a_clean_check(deals, outbox):
    response = await deals.get("/v1/pipelines")

    assert response.status_code == 200, response.text
    [pipeline] = response.json()["items"]
    assert pipeline["is_default"] is True
    names = [s["name"] for s in pipeline["stages"]]
    assert names == [
        "New lead", "Qualification", "Needs analysis", "Proposal preparation", "Proposal sent", "Negotiation",
        "Decision", "Contract and invoice", "Won", "Payment", "Delivery", "Onboarding and training", "Completed",
    ]
    by_name = {s["name"]: s for s in pipeline["stages"]}
    assert [s["name"] for s in pipeline["stages"] if s["is_won"]] == ["Won"]
    assert pipeline["stages"][-1]["is_completed"] is True
    # Amount and close date must be filled before the deal moves to "contract and invoice".
    assert {"amount", "expected_close_date"} <= set(by_name["Decision"]["exit_criteria"])
    check = await deals.get(f"/v1/pipelines/{pipeline['id']}/check")
    assert check.status_code == 200, check.text
    assert check.json()["findings"] == []
    [created] = await outbox("pipeline.created")
    assert created["pipeline_id"] == pipeline["id"]
    assert created["created_by"] is None
    assert [s["name"] for s in created["stages"]] == names
    starters = await outbox("playbook.updated")
    proposal_sent = by_name["Proposal sent"]["id"]
    [starter] = [p for p in starters if p["stage_id"] == proposal_sent]
    assert starter["steps"][0]["task_type"] == "call"
    assert (starter["steps"][0]["due_in"], starter["steps"][0]["due_unit"]) == (2, "working_days")
    assert starter["steps"][0]["checkpoint"] is True


async def test_two_first_calls_at_once_create_one_default_pipeline(stack, workspace, admin_db, outbox):
    await stack.start("deals")
    tokens = [token_for(workspace, Role.rep), token_for(workspace, Role.admin)] * 4
    async with httpx.AsyncClient(base_url=stack.url("deals"), timeout=10) as client:
        answers = await asyncio.gather(*(
            client.get("/v1/pipelines", headers={"Authorization": f"Bearer {t}"}) for t in tokens
        ))

    assert [a.status_code for a in answers] == [200] * len(tokens)
    ids = {tuple(p["id"] for p in a.json()["items"]) for a in answers}
    assert len(ids) == 1
    assert len(next(iter(ids))) == 1
    assert await admin_db.fetchval("SELECT count(*) FROM deals.pipelines WHERE workspace_id = $1", workspace) == 1
    assert len(await outbox("pipeline.created")) == 1
    assert await admin_db.fetchval("SELECT count(*) FROM deals.stages WHERE workspace_id = $1", workspace) == 13


async def test_the_default_pipeline_cannot_be_deleted_until_another_is_the_default(clients, outbox):
    admin = clients[Role.admin]
    default = (await admin.get("/v1/pipelines")).json()["items"][0]
    refused = await admin.delete(f"/v1/pipelines/{default['id']}")
    assert refused.status_code == 409
    assert fields_named(refused) == ["is_default"]

    other = (await create(admin, small_pipeline())).json()
    promoted = await admin.patch(f"/v1/pipelines/{other['id']}", json={"is_default": True})
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["is_default"] is True
    assert (await admin.get(f"/v1/pipelines/{default['id']}")).json()["is_default"] is False
    assert (await admin.delete(f"/v1/pipelines/{default['id']}")).status_code == 204
    assert (await admin.get(f"/v1/pipelines/{default['id']}")).status_code == 404
    # The workspace still has its default: no second one appears.
    assert [p["id"] for p in (await admin.get("/v1/pipelines")).json()["items"]] == [other["id"]]
    [deleted] = await outbox("pipeline.deleted")
    assert deleted["pipeline_id"] == default["id"]
    demoted = [e for e in await outbox("pipeline.updated") if e["pipeline_id"] == default["id"]]
    assert demoted[-1]["is_default"] is False


# ---- creating and changing --------------------------------------------------------------------------------


async def test_a_head_of_sales_creates_a_pipeline_with_its_stages_that_everyone_reads(clients, outbox):
    head, rep = clients[Role.head_of_sales], clients[Role.rep]

    response = await create(head, small_pipeline())

    pipeline = response.json()
    assert response.headers["etag"] == '"1"'
    assert response.headers["location"] == f"/v1/pipelines/{pipeline['id']}"
    assert [s["name"] for s in pipeline["stages"]] == ["Intro", "Offer", "Won", "Delivery"]
    assert [s["position"] for s in pipeline["stages"]] == [0, 1, 2, 3]
    assert pipeline["is_default"] is False
    assert pipeline["position"] == 1  # after the default
    read = await rep.get(f"/v1/pipelines/{pipeline['id']}")
    assert read.status_code == 200
    assert read.json() == pipeline
    created = [e for e in await outbox("pipeline.created") if e["pipeline_id"] == pipeline["id"]]
    assert created[0]["created_by"] == str(head.user_id)
    assert [s["stage_id"] for s in created[0]["stages"]] == [s["id"] for s in pipeline["stages"]]
    again = await head.post("/v1/pipelines", json={**small_pipeline(), "name": "PARTNERS"})
    assert again.status_code == 409
    assert fields_named(again) == ["name"]
    default = (await head.get("/v1/pipelines")).json()["items"][0]
    renamed = await head.patch(f"/v1/pipelines/{default['id']}", json={"name": "partners"})
    assert renamed.status_code == 409
    assert fields_named(renamed) == ["name"]
    cleared = await head.patch(f"/v1/pipelines/{default['id']}", json={"name": None})
    assert cleared.status_code == 422
    assert fields_named(cleared) == ["name"]


async def test_a_rep_reads_pipelines_but_changes_none(clients):
    admin, rep = clients[Role.admin], clients[Role.rep]
    pipeline = (await create(admin, small_pipeline())).json()
    path = f"/v1/pipelines/{pipeline['id']}"
    assert (await rep.get(path)).status_code == 200
    assert (await rep.post("/v1/pipelines", json=small_pipeline("Mine"))).status_code == 403
    assert (await rep.patch(path, json={"name": "Renamed"})).status_code == 403
    assert (await rep.delete(path)).status_code == 403
    first = pipeline["stages"][0]["id"]
    assert (await rep.put(f"{path}/stages/{first}/playbook", json={"script": "Hi"})).status_code == 403
    assert (await rep.get(f"{path}/stages/{first}/playbook")).status_code == 200
    assert (await admin.get(path)).json()["version"] == 1


async def test_another_workspaces_pipeline_is_not_found(clients, stack):
    admin = clients[Role.admin]
    pipeline = (await create(admin, small_pipeline())).json()
    stranger_token = token_for(uuid.uuid4(), Role.admin)
    async with stack.client("deals", stranger_token) as stranger:
        path = f"/v1/pipelines/{pipeline['id']}"
        assert (await stranger.get(path)).status_code == 404
        assert (await stranger.get(f"{path}/check")).status_code == 404
        assert (await stranger.patch(path, json={"name": "Mine"})).status_code == 404
        assert (await stranger.delete(path)).status_code == 404
        stage_id = pipeline["stages"][0]["id"]
        assert (await stranger.get(f"{path}/stages/{stage_id}/playbook")).status_code == 404
        listed = [p["id"] for p in (await stranger.get("/v1/pipelines")).json()["items"]]
        assert pipeline["id"] not in listed
        assert len(listed) == 1


async def test_a_patch_renames_reorders_adds_and_removes_stages_keeping_their_ids(clients, outbox):
    admin = clients[Role.admin]
    pipeline = (await create(admin, small_pipeline())).json()
    intro, offer, won, delivery = pipeline["stages"]
    path = f"/v1/pipelines/{pipeline['id']}"
    await admin.put(f"{path}/stages/{delivery['id']}/playbook", json={"script": "Deliver"})
    stages = [
        {**_sent(offer), "name": "Proposal"},
        {**_sent(intro)},
        stage("Negotiation", 70, "closing", exit_criteria=["amount", "expected_close_date"]),
        _sent(won),
    ]

    response = await admin.patch(path, json={"name": "Partner sales", "stages": stages}, headers={"If-Match": '"1"'})

    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["version"] == 2
    assert response.headers["etag"] == '"2"'
    assert changed["name"] == "Partner sales"
    assert [s["name"] for s in changed["stages"]] == ["Proposal", "Intro", "Negotiation", "Won"]
    assert [s["id"] for s in changed["stages"][:2]] == [offer["id"], intro["id"]]
    assert changed["stages"][3]["id"] == won["id"]
    assert changed["stages"][2]["id"] not in {intro["id"], offer["id"], won["id"], delivery["id"]}
    # The removed stage took its playbook with it.
    assert (await admin.get(f"{path}/stages/{delivery['id']}/playbook")).status_code == 404
    [updated] = [e for e in await outbox("pipeline.updated") if e["pipeline_id"] == pipeline["id"]]
    assert updated["changed"] == ["name", "stages"]
    assert updated["removed_stage_ids"] == [delivery["id"]]
    assert [s["name"] for s in updated["stages"]] == ["Proposal", "Intro", "Negotiation", "Won"]
    assert updated["pipeline_version"] == 2
    # The same content again changes nothing.
    same = await admin.patch(path, json={"stages": [_sent(s) for s in changed["stages"]]})
    assert same.json()["version"] == 2
    assert len([e for e in await outbox("pipeline.updated") if e["pipeline_id"] == pipeline["id"]]) == 1


def _sent(stage_out: dict) -> dict:
    return {k: v for k, v in stage_out.items() if k != "position"}


async def test_a_stale_if_match_is_refused_with_412_and_nothing_changes(clients):
    admin = clients[Role.admin]
    pipeline = (await create(admin, small_pipeline())).json()
    path = f"/v1/pipelines/{pipeline['id']}"
    assert (await admin.patch(path, json={"name": "First"}, headers={"If-Match": '"1"'})).status_code == 200

    stale = await admin.patch(path, json={"name": "Second"}, headers={"If-Match": '"1"'})

    assert stale.status_code == 412
    assert (await admin.get(path)).json()["name"] == "First"
    assert (await admin.delete(path, headers={"If-Match": '"1"'})).status_code == 412


@pytest.mark.parametrize(("change", "field"), [
    (lambda s: [*s[:1], {**s[1], "is_won": True}, *s[2:]], "stages[2].is_won"),
    (lambda s: [{**x, "is_won": False} for x in s], "stages"),
    (lambda s: [*s, stage("After", 100, "post_sale", is_completed=True), stage("Later", 100, "post_sale")],
     "stages[4].is_completed"),
    (lambda s: [{**s[0], "phase": "post_sale"}, *s[1:]], "stages[0].phase"),
    (lambda s: [*s[:3], {**s[3], "phase": "closing"}], "stages[3].phase"),
    (lambda s: [*s[:2], {**s[2], "is_completed": True}, *s[3:]], "stages[2].is_completed"),
    (lambda s: [*s[:1], {**s[1], "name": "intro"}, *s[2:]], "stages[1].name"),
    (lambda s: [*s[:1], {**s[1], "probability": 101}, *s[2:]], "stages[1].probability"),
    (lambda s: [*s[:1], {**s[1], "exit_criteria": ["amount", "shoe_size"]}, *s[2:]], "stages[1].exit_criteria[1]"),
    (lambda s: [*s[:1], {**s[1], "phase": "closed"}, *s[2:]], "stages[1].phase"),
    (lambda s: [*s[:1], {**s[1], "rotting_days": 0}, *s[2:]], "stages[1].rotting_days"),
    (lambda s: [], "stages"),
])
async def test_a_stage_list_breaking_a_rule_is_refused_naming_the_field(clients, change, field):
    admin = clients[Role.admin]
    body = small_pipeline()
    refused = await admin.post("/v1/pipelines", json={**body, "stages": change(body["stages"])})
    assert refused.status_code == 422, refused.text
    assert field in fields_named(refused)

    pipeline = (await create(admin, body)).json()
    kept = [_sent(s) for s in pipeline["stages"]]
    patched = await admin.patch(f"/v1/pipelines/{pipeline['id']}", json={"stages": change(kept)})
    assert patched.status_code == 422, patched.text
    assert field in fields_named(patched)
    assert (await admin.get(f"/v1/pipelines/{pipeline['id']}")).json()["version"] == 1


async def test_custom_fields_may_be_exit_criteria_and_unknown_stage_ids_are_refused(clients):
    admin = clients[Role.admin]
    body = small_pipeline()
    body["stages"][1]["exit_criteria"] = ["amount", "custom.po_number"]
    pipeline = (await create(admin, body)).json()
    assert pipeline["stages"][1]["exit_criteria"] == ["amount", "custom.po_number"]
    stages = [_sent(s) for s in pipeline["stages"]]
    stages[0]["id"] = str(uuid.uuid4())
    refused = await admin.patch(f"/v1/pipelines/{pipeline['id']}", json={"stages": stages})
    assert refused.status_code == 422
    assert fields_named(refused) == ["stages[0].id"]


async def test_a_keyed_create_retried_gives_the_same_pipeline_and_one_event(clients, outbox):
    admin = clients[Role.admin]
    headers = {"Idempotency-Key": "create-partners"}
    first = await admin.post("/v1/pipelines", json=small_pipeline(), headers=headers)
    again = await admin.post("/v1/pipelines", json=small_pipeline(), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    created = [e for e in await outbox("pipeline.created") if e["created_by"] is not None]
    assert len(created) == 1


async def test_the_pipeline_list_pages_through_every_pipeline(clients):
    admin = clients[Role.admin]
    made = [(await create(admin, small_pipeline(f"P{i}"))).json()["id"] for i in range(3)]
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await admin.get("/v1/pipelines", params=params)).json()
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen[1:] == made
    assert len(seen) == 4
