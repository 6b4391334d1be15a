"""What a pipeline's stages may be: phases, the vocabulary of exit criteria, and the rules a stage list obeys.

A stage list has exactly one won stage and at most one completed stage; the post-sale stages are exactly those
after the won stage (the won stage ends the sale, and a won deal is being delivered, not sold), and the completed
stage is the last. These are refused (422 naming the stage's field); good-practice advice is the checker's
(services.deals.pipeline_check), which never refuses a save.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

from pydantic_core import PydanticCustomError

from services.common.problems import InvalidFields

MAX_STAGES = 50


class Phase(StrEnum):
    pre_sale = "pre_sale"
    closing = "closing"
    post_sale = "post_sale"


# Deal fields an exit criterion may name (the deal's own fields arrive with deals; custom.<key> names one of
# the deal's custom fields).
EXIT_CRITERIA = ("amount", "expected_close_date", "company", "contact", "line_items", "products")
_CUSTOM_KEY = re.compile(r"custom\.[a-z][a-z0-9_]{0,62}")


def check_exit_criterion(value: str) -> str:
    """A deal field from the vocabulary, or custom.<key> (lower-case letters, digits, underscores), for pydantic."""
    name = value.strip()
    if name in EXIT_CRITERIA or _CUSTOM_KEY.fullmatch(name):
        return name
    raise PydanticCustomError(
        "unknown_exit_criterion",
        "An exit criterion is a deal field: one of {fields}, or custom.<key> for a custom field "
        "(lower-case letters, digits and underscores).",
        {"fields": ", ".join(EXIT_CRITERIA)},
    )


def _error(field: str, code: str, message: str) -> dict[str, str]:
    return {"field": field, "code": code, "message": message}


def check_stage_list(stages: Sequence[Mapping[str, Any]], field: str = "stages") -> None:
    """Raises InvalidFields naming each stage field that breaks a rule (`stages[3].is_won`)."""
    errors: list[dict[str, str]] = []
    names: dict[str, int] = {}
    for i, stage in enumerate(stages):
        key = " ".join(stage["name"].split()).casefold()
        if key in names:
            errors.append(_error(
                f"{field}[{i}].name", "duplicate_name",
                f"Stage {names[key]} already has this name (compared ignoring case): each stage needs its own.",
            ))
        else:
            names[key] = i
        if stage["is_won"] and stage["is_completed"]:
            errors.append(_error(
                f"{field}[{i}].is_completed", "won_and_completed",
                "A stage is either the won stage or the completed one: completion comes after the win.",
            ))
    won = [i for i, s in enumerate(stages) if s["is_won"]]
    if not won:
        errors.append(_error(
            field, "no_won_stage", "Mark exactly one stage is_won: reaching it is what winning the deal means.",
        ))
    for i in won[1:]:
        errors.append(_error(
            f"{field}[{i}].is_won", "second_won_stage",
            f"Stage {won[0]} is already the won stage: a pipeline has exactly one.",
        ))
    completed = [i for i, s in enumerate(stages) if s["is_completed"]]
    for i in completed[1:]:
        errors.append(_error(
            f"{field}[{i}].is_completed", "second_completed_stage",
            f"Stage {completed[0]} is already the completed stage: a pipeline has at most one.",
        ))
    if completed and completed[0] != len(stages) - 1:
        errors.append(_error(
            f"{field}[{completed[0]}].is_completed", "completed_not_last",
            "The completed stage ends the process: it must be the last stage.",
        ))
    if won:
        for i, stage in enumerate(stages):
            if i < won[0] and stage["phase"] == Phase.post_sale:
                errors.append(_error(
                    f"{field}[{i}].phase", "post_sale_before_won",
                    "A post-sale stage comes after the won stage: before the win there is nothing to deliver.",
                ))
            elif i == won[0] and stage["phase"] == Phase.post_sale:
                errors.append(_error(
                    f"{field}[{i}].phase", "post_sale_won_stage",
                    "The won stage ends the sale (closing, or pre_sale): post-sale stages follow it.",
                ))
            elif i > won[0] and stage["phase"] != Phase.post_sale:
                errors.append(_error(
                    f"{field}[{i}].phase", "sale_after_won",
                    "Stages after the won stage are post_sale: the deal is already won there.",
                ))
    if errors:
        raise InvalidFields(errors)
