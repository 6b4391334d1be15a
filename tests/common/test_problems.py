"""Validation error locations become field names a client can match against its own request."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.common.problems import field_path

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10)


@given(st.sampled_from(["body", "query", "path", "header"]), st.lists(names | st.integers(0, 99), max_size=5))
def test_field_path_drops_the_location_and_keeps_the_path(where, rest):
    path = field_path((where, *rest))
    if not rest:
        assert path == "body"
        return
    for part in rest:
        assert (f"[{part}]" if isinstance(part, int) else str(part)) in path
    assert not path.startswith(where + ".")


def test_field_path_examples():
    assert field_path(("body", "email")) == "email"
    assert field_path(("body", "items", 2, "price")) == "items[2].price"
    assert field_path(("query", "limit")) == "limit"
