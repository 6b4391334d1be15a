"""The pipeline check: each rule fires with its why, saving never fails on a warning, and no stage list crashes it."""

from __future__ import annotations

import itertools
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.auth import Role
from services.deals.pipeline_check import check_pipeline


async def test_each_rule_fires_on_a_crafted_pipeline_saying_why(clients):
    admin = clients[Role.admin]
    body = {
        "name": "Careless",
        "stages": [
            {"name": "Call", "phase": "pre_sale", "probability": 30, "expected_result": "Client agrees to talk",
             "required_actions": ["Call"], "rotting_days": 3},
            {"name": "Talk", "phase": "pre_sale", "probability": 20, "expected_result": "client agrees  to TALK",
             "required_actions": ["Talk"], "rotting_days": 3},
            {"name": "Offer", "phase": "closing", "probability": 20, "required_actions": [], "rotting_days": 5},
            {"name": "Won", "phase": "closing", "probability": 100, "expected_result": "Signed",
             "required_actions": ["Sign"], "exit_criteria": ["amount"], "is_won": True},
        ],
    }

    created = await admin.post("/v1/pipelines", json=body)

    assert created.status_code == 201, created.text  # warnings never refuse a save
    pipeline = created.json()
    call, talk, offer, won = (s["id"] for s in pipeline["stages"])
    check = await admin.get(f"/v1/pipelines/{pipeline['id']}/check")
    assert check.status_code == 200
    assert check.json()["pipeline_version"] == 1
    findings = {(f["code"], f["stage_id"]): f for f in check.json()["findings"]}
    assert set(findings) == {
        ("too_few_stages", None),
        ("no_post_sale_stages", None),
        ("duplicate_expected_result", talk),
        ("probability_not_rising", talk),
        ("no_expected_result", offer),
        ("no_required_actions", offer),
        ("closing_stage_without_exit_criteria", offer),
        ("probability_not_rising", offer),
    }
    assert all(f["severity"] == "warning" for f in findings.values())
    assert "fewer than 7" in findings[("too_few_stages", None)]["message"]
    assert "'Call'" in findings[("duplicate_expected_result", talk)]["message"]
    assert "lower win probability (20%)" in findings[("probability_not_rising", talk)]["message"]
    assert "same win probability" in findings[("probability_not_rising", offer)]["message"]
    assert "forecast" in findings[("closing_stage_without_exit_criteria", offer)]["message"]
    assert "nobody is accountable" in findings[("no_post_sale_stages", None)]["message"]
    assert call not in {stage_id for _, stage_id in findings}
    assert won not in {stage_id for _, stage_id in findings}


async def test_a_stage_without_a_rotting_limit_is_an_info_finding(clients):
    admin = clients[Role.admin]
    default = (await admin.get("/v1/pipelines")).json()["items"][0]
    stages = [{k: v for k, v in s.items() if k != "position"} for s in default["stages"]]
    stages[2]["rotting_days"] = None
    patched = await admin.patch(f"/v1/pipelines/{default['id']}", json={"stages": stages})
    assert patched.status_code == 200, patched.text
    findings = (await admin.get(f"/v1/pipelines/{default['id']}/check")).json()["findings"]
    assert [(f["code"], f["severity"], f["stage_id"]) for f in findings] == [
        ("no_rotting_limit", "info", stages[2]["id"])
    ]


stage_lists = st.lists(
    st.fixed_dictionaries({
        "id": st.uuids(),
        "name": st.text(max_size=5),
        "expected_result": st.one_of(st.none(), st.sampled_from(["", " ", "Signed", "signed ", "Paid"])),
        "required_actions": st.lists(st.text(max_size=3), max_size=2),
        "exit_criteria": st.lists(st.sampled_from(["amount", "company", "custom.x"]), max_size=2),
        "probability": st.integers(0, 100),
        "rotting_days": st.one_of(st.none(), st.integers(1, 90)),
        "phase": st.sampled_from(["pre_sale", "closing", "post_sale"]),
        "is_won": st.booleans(),
        "is_completed": st.booleans(),
    }),
    max_size=15,
)


@settings(max_examples=300, deadline=None)
@given(stage_lists)
def test_the_check_never_crashes_and_each_finding_points_at_a_stage_of_the_pipeline(stages):
    findings = check_pipeline(stages)

    ids = {s["id"] for s in stages}
    for finding in findings:
        assert finding.stage_id is None or finding.stage_id in ids
        assert finding.severity in ("warning", "info")
        assert finding.message
    # The whole-pipeline rules, against a brute-force reading of them.
    codes = {f.code for f in findings if f.stage_id is None}
    assert ("too_few_stages" in codes) == (len(stages) < 7)
    assert ("no_post_sale_stages" in codes) == all(s["phase"] != "post_sale" for s in stages)
    falling = {s["id"] for before, s in itertools.pairwise(stages) if s["probability"] < before["probability"]}
    flagged = {f.stage_id for f in findings if f.code == "probability_not_rising"}
    assert falling <= flagged


def test_a_pipeline_without_stages_is_checked_without_crashing():
    assert {f.code for f in check_pipeline([])} == {"too_few_stages", "no_post_sale_stages"}
    assert uuid.UUID(int=0) not in {f.stage_id for f in check_pipeline([])}
