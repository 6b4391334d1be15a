"""Pipelines through GraphQL against the real deals service: the default pipeline with its stages, playbooks and
a clean check; a crafted pipeline's findings; another workspace's pipeline reads as null."""

from __future__ import annotations

import uuid

import httpx
import pytest

from services.common.auth import Role
from services.common.testing import token_for

pytestmark = pytest.mark.usefixtures("database_url")

PIPELINES = """
{
  pipelines(first: 10) {
    edges { node {
      id name isDefault version
      stages { id position name expectedResult requiredActions exitCriteria probability rottingDays phase isWon
               isCompleted playbook { version script steps { title taskType dueIn dueUnit assignee checkpoint } } }
      check { code severity stageId message }
    } }
    pageInfo { hasNextPage }
  }
}
"""

PIPELINE = """
query P($id: ID!) { pipeline(id: $id) { name stages { name phase } check { code severity stageId message } } }
"""


@pytest.fixture
def head(workspace: uuid.UUID) -> str:
    return token_for(workspace, Role.head_of_sales, uuid.uuid4())


async def test_the_default_pipeline_has_its_stages_playbooks_and_a_clean_check(live_gateway_with_deals, head):
    data = await live_gateway_with_deals.graphql(head, PIPELINES)
    [edge] = data["pipelines"]["edges"]
    pipeline = edge["node"]
    assert pipeline["isDefault"] is True
    stages = pipeline["stages"]
    assert len(stages) == 13
    assert [s["position"] for s in stages] == sorted(s["position"] for s in stages)
    assert [s["name"] for s in stages if s["isWon"]] == ["Won"]
    assert stages[-1]["isCompleted"] is True
    assert {s["phase"] for s in stages} == {"PRE_SALE", "CLOSING", "POST_SALE"}
    probabilities = [s["probability"] for s in stages]
    assert probabilities == sorted(probabilities)
    assert pipeline["check"] == []
    with_steps = [s for s in stages if s["playbook"]["steps"]]
    assert with_steps, "the default pipeline comes with starter playbooks"
    assert any(step["checkpoint"] for s in with_steps for step in s["playbook"]["steps"])
    bare = [s for s in stages if not s["playbook"]["steps"] and not s["playbook"]["script"]]
    assert bare, "not every stage has a starter playbook"
    assert {s["playbook"]["version"] for s in bare} == {0}


async def test_a_crafted_pipeline_reads_back_with_each_finding_and_why(live_gateway_with_deals, stack, workspace, head):
    body = {"name": "Quick", "stages": [
        {"name": "Talk", "expected_result": "Interest", "required_actions": ["Call"], "probability": 30,
         "phase": "pre_sale"},
        {"name": "Offer", "expected_result": "Interest", "required_actions": ["Send offer"], "probability": 20,
         "phase": "closing"},
        {"name": "Won", "expected_result": "Signed", "required_actions": ["Sign"], "probability": 100,
         "phase": "closing", "is_won": True},
    ]}
    async with httpx.AsyncClient(base_url=stack.url("deals"), headers={"Authorization": f"Bearer {head}"}) as deals:
        created = await deals.post("/v1/pipelines", json=body)
    assert created.status_code == 201, created.text
    offer = created.json()["stages"][1]["id"]

    pipeline = (await live_gateway_with_deals.graphql(head, PIPELINE, id=created.json()["id"]))["pipeline"]
    assert [s["name"] for s in pipeline["stages"]] == ["Talk", "Offer", "Won"]
    findings = {(f["code"], f["stageId"]) for f in pipeline["check"]}
    assert ("too_few_stages", None) in findings
    assert ("no_post_sale_stages", None) in findings
    assert ("duplicate_expected_result", offer) in findings
    assert ("probability_not_rising", offer) in findings
    assert ("closing_stage_without_exit_criteria", offer) in findings
    assert all(f["severity"] in ("WARNING", "INFO") and f["message"] for f in pipeline["check"])

    stranger = token_for(uuid.uuid4(), Role.head_of_sales, uuid.uuid4())
    assert (await live_gateway_with_deals.graphql(stranger, PIPELINE, id=created.json()["id"]))["pipeline"] is None
