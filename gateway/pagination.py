"""Relay-style pages (`first`/`after`, a cursor on every edge) on top of upstream APIs that hand out
one opaque `next_cursor` per page.

An edge in the middle of a page has no upstream cursor of its own, so the gateway's cursor is the
upstream cursor the page started from plus how many items to skip after it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from gateway.errors import InvalidArgument

T = TypeVar("T")

MAX_FIRST = 100
# A gateway cursor never skips more than one page; a bigger number was not made by us.
MAX_SKIP = MAX_FIRST

# fetch(limit, upstream_cursor) -> (items, next upstream cursor or None at the end)
Fetch = Callable[[int, str | None], Awaitable[tuple[Sequence[T], str | None]]]


@dataclass(frozen=True, slots=True)
class PageCursor:
    upstream: str | None
    skip: int = 0

    def encode(self) -> str:
        raw = json.dumps({"c": self.upstream, "s": self.skip}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str) -> PageCursor:
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            data = json.loads(raw)
            upstream, skip = data["c"], data["s"]
        except (binascii.Error, ValueError, TypeError, KeyError) as exc:
            raise InvalidArgument("after is not a valid cursor") from exc
        if not (upstream is None or isinstance(upstream, str)) or type(skip) is not int:
            raise InvalidArgument("after is not a valid cursor")
        if not 0 <= skip <= MAX_SKIP:
            raise InvalidArgument("after is not a valid cursor")
        return cls(upstream, skip)


@dataclass(frozen=True, slots=True)
class Window(Generic[T]):
    edges: list[tuple[str, T]]
    has_next_page: bool
    end_cursor: str | None


def check_first(first: int) -> None:
    if first > MAX_FIRST:
        raise InvalidArgument(f"first must be at most {MAX_FIRST}")
    if first < 1:
        raise InvalidArgument("first must be at least 1")


async def window(fetch: Fetch[T], *, first: int, after: str | None) -> Window[T]:
    """Up to `first` items after the `after` cursor, each with a cursor to resume right after it."""
    check_first(first)
    start = PageCursor.decode(after) if after else PageCursor(None)
    upstream = start.upstream
    if start.skip:
        # Resuming from the middle of a page: step over what the client has seen, so the new edges'
        # cursors are counted from a fresh upstream cursor and `skip` never grows past one page.
        _, upstream = await fetch(start.skip, upstream)
        if upstream is None:
            return Window(edges=[], has_next_page=False, end_cursor=None)
    items, next_cursor = await fetch(first, upstream)
    edges: list[tuple[str, T]] = []
    for index, item in enumerate(items):
        if index == len(items) - 1 and next_cursor is not None:
            cursor = PageCursor(next_cursor)
        else:
            cursor = PageCursor(upstream, index + 1)
        edges.append((cursor.encode(), item))
    return Window(
        edges=edges,
        has_next_page=next_cursor is not None,
        end_cursor=edges[-1][0] if edges else None,
    )
