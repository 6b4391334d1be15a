"""Per-request loaders for resources the services serve one id at a time (a lead's history, answers, score or
assignments; a member, team or rule): each distinct id is read once per request with its own GET, at most
CONCURRENCY at a time, so a page of 100 leads asking for a field does not open 100 requests at once.

A loader belongs to one request only: its cache holds what this caller may see, so it is never shared.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from strawberry.dataloader import DataLoader

from gateway.clients.base import UpstreamRejected

R = TypeVar("R")

CONCURRENCY = 10


def create_one_by_one_loader(get: Callable[[uuid.UUID], Awaitable[R]]) -> DataLoader[uuid.UUID, R | None]:
    """A loader that reads each distinct id with `get`; an id the service does not know, or that is not the
    caller's to see (another workspace's, or a lead no longer theirs), loads as None."""
    gate = asyncio.Semaphore(CONCURRENCY)

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
