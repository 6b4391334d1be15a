"""The pipeline check: a pipeline's stages against good practice, each finding with why it matters.

Findings advise, they never refuse: a pipeline is saved whatever the check says (GET /v1/pipelines/{id}/check).
The rules are described in docs/deals.md, "The pipeline check".
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

MIN_STAGES = 7

Severity = Literal["warning", "info"]


@dataclass(frozen=True, slots=True)
class Finding:
    code: str
    severity: Severity
    stage_id: uuid.UUID | None
    message: str


def _same_text(text: str) -> str:
    return " ".join(text.split()).casefold()


def check_pipeline(stages: Sequence[Mapping[str, Any] | asyncpg.Record]) -> list[Finding]:
    """The findings for a pipeline's stages in order. Each stage maps id, name, expected_result,
    required_actions, exit_criteria, probability, rotting_days, phase, is_won and is_completed."""
    findings: list[Finding] = []
    if len(stages) < MIN_STAGES:
        findings.append(Finding(
            "too_few_stages", "warning", None,
            f"The pipeline has {len(stages)} stage(s), fewer than {MIN_STAGES}. With so few stages a stage covers "
            "several steps of the sale, so the board cannot show where deals stall and the probabilities are too "
            "coarse to forecast with; a B2B sale usually runs through qualification, needs analysis, proposal, "
            "negotiation, decision and contract.",
        ))
    if not any(s["phase"] == "post_sale" for s in stages):
        findings.append(Finding(
            "no_post_sale_stages", "warning", None,
            "No stage is post_sale: the process stops at the win. Payment, delivery and onboarding are where a "
            "won client is kept or lost, and without stages for them nobody is accountable for them.",
        ))
    seen_results: dict[str, Mapping[str, Any] | asyncpg.Record] = {}
    won_index = next((i for i, s in enumerate(stages) if s["is_won"]), len(stages))
    for i, stage in enumerate(stages):
        name, stage_id = stage["name"], stage["id"]
        result = (stage["expected_result"] or "").strip()
        if not result:
            findings.append(Finding(
                "no_expected_result", "warning", stage_id,
                f"Stage {name!r} has no expected result. Without the result that ends it, a rep cannot tell when "
                "a deal is ready to move on, and deals move on feelings instead of facts.",
            ))
        else:
            earlier = seen_results.get(_same_text(result))
            if earlier is not None:
                findings.append(Finding(
                    "duplicate_expected_result", "warning", stage_id,
                    f"Stage {name!r} expects the same result as stage {earlier['name']!r} ({result!r}). Two stages "
                    "that end with the same result are one stage twice: merge them, or say what each achieves.",
                ))
            else:
                seen_results[_same_text(result)] = stage
        if not stage["required_actions"]:
            findings.append(Finding(
                "no_required_actions", "warning", stage_id,
                f"Stage {name!r} has no required actions. A stage with nothing to do in it leaves the rep to guess "
                "how to get the deal to its result, and playbooks have nothing to build on.",
            ))
        if stage["phase"] == "closing" and not stage["exit_criteria"]:
            findings.append(Finding(
                "closing_stage_without_exit_criteria", "warning", stage_id,
                f"Closing stage {name!r} has no exit criteria. Near the close a deal should not move on without "
                "its facts (amount, expected close date, the contact who signs): the forecast is built from them.",
            ))
        if i > 0:
            before = stages[i - 1]
            if stage["probability"] < before["probability"]:
                findings.append(Finding(
                    "probability_not_rising", "warning", stage_id,
                    f"Stage {name!r} has a lower win probability ({stage['probability']}%) than the stage before it, "
                    f"{before['name']!r} ({before['probability']}%). A deal that moves forward should be likelier to "
                    "be won; falling probabilities make the weighted forecast shrink as deals progress.",
                ))
            elif stage["probability"] == before["probability"] and i <= won_index:
                findings.append(Finding(
                    "probability_not_rising", "warning", stage_id,
                    f"Stage {name!r} has the same win probability ({stage['probability']}%) as the stage before it, "
                    f"{before['name']!r}. Up to the win each stage should make the deal likelier to be won; one "
                    "that does not is not a step the forecast can see.",
                ))
        if stage["rotting_days"] is None and not (stage["is_won"] or stage["is_completed"]):
            findings.append(Finding(
                "no_rotting_limit", "info", stage_id,
                f"Stage {name!r} has no rotting limit: a deal may sit in it forever without anyone being told. "
                "Set rotting_days to how long a deal normally takes there.",
            ))
    return findings
