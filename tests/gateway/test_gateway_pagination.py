"""Relay cursors over upstream page cursors, checked against a plain list: from any edge's cursor the
next page starts right after that edge, however the client hops between pages.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import InvalidArgument
from gateway.pagination import MAX_FIRST, PageCursor, window


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """The fake fetch never waits, so the coroutine finishes on its first step; no event loop needed."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("window() waited on something the fake fetch does not provide")


class FakeUpstream:
    """An upstream list API over `items` whose cursor is the offset of the next item."""

    def __init__(self, count: int) -> None:
        self.items = list(range(count))
        self.limits: list[int] = []

    async def fetch(self, limit: int, cursor: str | None) -> tuple[list[int], str | None]:
        self.limits.append(limit)
        start = int(cursor) if cursor else 0
        end = start + limit
        return self.items[start:end], (str(end) if end < len(self.items) else None)


@given(
    count=st.integers(0, 250),
    steps=st.lists(st.tuples(st.integers(1, MAX_FIRST), st.integers(0, MAX_FIRST - 1)), max_size=8),
)
def test_every_edge_cursor_resumes_right_after_its_edge(count, steps):
    upstream = FakeUpstream(count)
    position, after = 0, None
    for first, pick in steps:
        page = run(window(upstream.fetch, first=first, after=after))

        assert [item for _, item in page.edges] == upstream.items[position : position + first]
        assert page.has_next_page == (position + first < count)
        if not page.edges:
            break
        chosen = min(pick, len(page.edges) - 1)
        after = page.edges[chosen][0]
        position += chosen + 1
    # Upstreams refuse limits above 200; the gateway never needs more than one page per call.
    assert all(1 <= limit <= MAX_FIRST for limit in upstream.limits)


def test_walking_end_cursors_visits_each_item_once():
    upstream = FakeUpstream(23)
    seen: list[int] = []
    after = None
    while True:
        page = run(window(upstream.fetch, first=5, after=after))
        seen += [item for _, item in page.edges]
        if not page.has_next_page:
            break
        after = page.end_cursor
    assert seen == upstream.items
    assert len(upstream.limits) == 5  # one upstream call per page: end cursors never need a skip


@pytest.mark.parametrize(
    ("first", "message"), [(101, "first must be at most 100"), (0, "first must be at least 1")]
)
def test_first_out_of_range_is_refused(first, message):
    with pytest.raises(InvalidArgument, match=message):
        run(window(FakeUpstream(3).fetch, first=first, after=None))


@pytest.mark.parametrize(
    "cursor",
    ["", "%%%", "bm90LWpzb24", PageCursor("x", MAX_FIRST + 1).encode(), PageCursor("x", -1).encode()],
)
def test_cursors_the_gateway_did_not_make_are_refused(cursor):
    with pytest.raises(InvalidArgument, match="after is not a valid cursor"):
        PageCursor.decode(cursor)
