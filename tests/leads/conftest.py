"""Fixtures the leads tests share: the leads service over HTTP, as an admin of the test's workspace."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest


@pytest.fixture
async def leads(stack, admin_token) -> AsyncIterator[httpx.AsyncClient]:
    await stack.start("leads")
    async with stack.client("leads", admin_token) as client:
        yield client


@pytest.fixture
async def leads_in_russia(leads: httpx.AsyncClient) -> httpx.AsyncClient:
    """The same, in a workspace whose phone numbers without a country code are Russian ones."""
    response = await leads.patch("/v1/lead-settings", json={"default_region": "RU"})
    assert response.status_code == 200, response.text
    return leads
