"""Fixtures the deals tests share: the deals service over HTTP, one client per auth role of the test's workspace."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import httpx
import pytest

from services.common.auth import Role
from services.common.testing import token_for


@pytest.fixture
async def deals(stack, admin_token) -> AsyncIterator[httpx.AsyncClient]:
    await stack.start("deals")
    async with stack.client("deals", admin_token) as client:
        yield client


@pytest.fixture
async def clients(deals, stack, workspace) -> AsyncIterator[dict[Role, httpx.AsyncClient]]:
    """Admin (the `deals` client), head of sales and rep of the test's workspace, each with `.user_id`."""
    async with AsyncExitStack() as exits:
        made: dict[Role, httpx.AsyncClient] = {Role.admin: deals}
        for role in (Role.head_of_sales, Role.rep):
            user_id = uuid.uuid4()
            client = await exits.enter_async_context(stack.client("deals", token_for(workspace, role, user_id)))
            client.user_id = user_id  # type: ignore[attr-defined]
            made[role] = client
        yield made


@pytest.fixture
def outbox(admin_db) -> Callable[[str], Awaitable[list[dict]]]:
    """`await outbox("pipeline.created")`: the data of each such event in the deals outbox, oldest first."""

    async def read(name: str) -> list[dict]:
        rows = await admin_db.fetch(
            "SELECT event FROM deals.outbox WHERE type = $1 ORDER BY seq", f"voronka.{name}.v1"
        )
        return [json.loads(r["event"])["data"] for r in rows]

    return read
