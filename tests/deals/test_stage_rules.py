"""The rules every stage list keeps, against a brute-force reading of them over many lists."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.problems import InvalidFields
from services.deals.stages import check_stage_list

stage_lists = st.lists(
    st.fixed_dictionaries({
        "name": st.sampled_from(["Intro", "intro", "Offer", "Won", "Paid", "Done"]),
        "phase": st.sampled_from(["pre_sale", "closing", "post_sale"]),
        "is_won": st.booleans(),
        "is_completed": st.booleans(),
    }),
    max_size=8,
)


def acceptable(stages: list[dict]) -> bool:
    won = [i for i, s in enumerate(stages) if s["is_won"]]
    completed = [i for i, s in enumerate(stages) if s["is_completed"]]
    names = [s["name"].casefold() for s in stages]
    return (
        len(won) == 1
        and len(completed) <= 1
        and all(i == len(stages) - 1 for i in completed)
        and not any(s["is_won"] and s["is_completed"] for s in stages)
        and all((s["phase"] == "post_sale") == (i > won[0]) for i, s in enumerate(stages))
        and len(set(names)) == len(names)
    )


@settings(max_examples=400, deadline=None)
@given(stage_lists)
def test_a_stage_list_is_accepted_exactly_when_it_keeps_the_rules_and_refusals_name_its_stages(stages):
    try:
        check_stage_list(stages)
    except InvalidFields as refused:
        assert not acceptable(stages)
        for error in refused.errors:
            match = re.fullmatch(r"stages(?:\[(\d+)\]\.(name|is_won|is_completed|phase))?", error["field"])
            assert match, error
            assert match.group(1) is None or int(match.group(1)) < len(stages)
    else:
        assert acceptable(stages)
