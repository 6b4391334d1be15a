"""Per-request loaders for the roster: each distinct member or team a request names is read once.

The roster has no `?ids=` lookup (a workspace has tens of members, not millions of leads): the loader reads
each distinct id with its own GET, at most ROSTER_CONCURRENCY at a time.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from strawberry.dataloader import DataLoader

from gateway.clients.base import UpstreamRejected
from gateway.clients.roster import MemberRecord, TeamRecord

R = TypeVar("R")

MemberLoader = DataLoader[uuid.UUID, MemberRecord | None]
TeamLoader = DataLoader[uuid.UUID, TeamRecord | None]

ROSTER_CONCURRENCY = 10


def create_one_by_one_loader(get: Callable[[uuid.UUID], Awaitable[R]]) -> DataLoader[uuid.UUID, R | None]:
    """A loader for one request that reads each distinct id with `get`; an id the service does not know (or
    that is another workspace's) loads as None."""
    gate = asyncio.Semaphore(ROSTER_CONCURRENCY)

    async def one(key: uuid.UUID) -> R | None:
        async with gate:
            try:
                return await get(key)
            except UpstreamRejected as rejected:
                if rejected.status == 404:
                    return None
                raise

    async def load(keys: list[uuid.UUID]) -> list[R | BaseException | None]:
        # One failed read fails only its own field, not every one in the batch.
        return list(await asyncio.gather(*(one(key) for key in keys), return_exceptions=True))

    return DataLoader(load_fn=load)
