"""Playbooks: a stage's script and steps, edited by heads of sales and admins, versioned, announced with their steps."""

from __future__ import annotations

from services.common.auth import Role

STEPS = [
    {"title": "Send the proposal", "task_type": "proposal", "due_in": 2, "due_unit": "working_days",
     "assignee": "deal_owner", "checkpoint": True},
    {"title": "Check in", "task_type": "follow_up", "due_in": 4, "due_unit": "working_hours",
     "assignee": "role:closer"},
]


async def default_stage(client, name: str) -> tuple[str, str]:
    pipeline = (await client.get("/v1/pipelines")).json()["items"][0]
    [stage] = [s for s in pipeline["stages"] if s["name"] == name]
    return pipeline["id"], stage["id"]


async def test_a_head_of_sales_edits_a_playbook_and_every_version_stays_readable(clients, outbox):
    head, rep = clients[Role.head_of_sales], clients[Role.rep]
    pipeline_id, stage_id = await default_stage(head, "Negotiation")
    path = f"/v1/pipelines/{pipeline_id}/stages/{stage_id}/playbook"
    empty = await rep.get(path)
    assert empty.status_code == 200
    assert (empty.json()["version"], empty.json()["steps"], empty.headers["etag"]) == (0, [], '"0"')

    first = await head.put(path, json={"script": "Ask what stands in the way.", "steps": STEPS},
                           headers={"If-Match": '"0"'})
    assert first.status_code == 200, first.text
    assert first.json()["version"] == 1
    assert first.json()["steps"][1] == {**STEPS[1], "description": None, "checkpoint": False}
    second = await head.put(path, json={"script": "Ask about the budget first.", "steps": STEPS[:1]},
                            headers={"If-Match": '"1"'})
    assert second.json()["version"] == 2
    assert second.headers["etag"] == '"2"'

    read = (await rep.get(path)).json()
    assert (read["version"], read["script"], len(read["steps"])) == (2, "Ask about the budget first.", 1)
    assert read["created_by"] == str(head.user_id)
    versions = (await rep.get(f"{path}/versions")).json()
    assert [v["version"] for v in versions["items"]] == [2, 1]
    assert versions["items"][1]["script"] == "Ask what stands in the way."
    page = (await rep.get(f"{path}/versions", params={"limit": 1})).json()
    assert [v["version"] for v in page["items"]] == [2]
    rest = (await rep.get(f"{path}/versions", params={"limit": 1, "cursor": page["next_cursor"]})).json()
    assert [v["version"] for v in rest["items"]] == [1]
    assert rest["next_cursor"] is None

    published = [e for e in await outbox("playbook.updated") if e["stage_id"] == stage_id]
    assert [e["playbook_version"] for e in published] == [1, 2]
    assert published[0]["steps"][0] == {**STEPS[0], "description": None}
    assert published[0]["updated_by"] == str(head.user_id)
    assert published[0]["pipeline_id"] == pipeline_id


async def test_a_stale_playbook_edit_is_refused_and_the_same_content_makes_no_version(clients, outbox):
    admin = clients[Role.admin]
    pipeline_id, stage_id = await default_stage(admin, "Proposal sent")
    path = f"/v1/pipelines/{pipeline_id}/stages/{stage_id}/playbook"
    starter = (await admin.get(path)).json()
    assert starter["version"] == 1
    assert starter["created_by"] is None
    assert starter["steps"][0]["checkpoint"] is True

    assert (await admin.put(path, json={"script": "New"}, headers={"If-Match": '"0"'})).status_code == 412
    same = await admin.put(path, json={"script": starter["script"], "steps": starter["steps"]})
    assert same.json()["version"] == 1
    assert len([e for e in await outbox("playbook.updated") if e["stage_id"] == stage_id]) == 1


async def test_a_bad_step_is_refused_naming_the_field(clients):
    admin = clients[Role.admin]
    pipeline_id, stage_id = await default_stage(admin, "Decision")
    path = f"/v1/pipelines/{pipeline_id}/stages/{stage_id}/playbook"
    for change, field in [
        ({"assignee": "role:wizard"}, "steps[0].assignee"),
        ({"task_type": "telegram"}, "steps[0].task_type"),
        ({"due_unit": "fortnights"}, "steps[0].due_unit"),
        ({"due_in": -1}, "steps[0].due_in"),
        ({"title": ""}, "steps[0].title"),
    ]:
        refused = await admin.put(path, json={"steps": [{**STEPS[0], **change}]})
        assert refused.status_code == 422, refused.text
        assert [e["field"] for e in refused.json()["errors"]] == [field]
    assert (await admin.get(path)).json()["version"] == 0
    other = await admin.get(f"/v1/pipelines/{pipeline_id}/stages/{pipeline_id}/playbook")
    assert other.status_code == 404
