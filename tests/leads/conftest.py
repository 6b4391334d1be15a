"""Fixtures the leads tests share: the leads service over HTTP, as an admin of the test's workspace; and the same
with the background workers off, for tests that run a worker themselves (`.drain()`) on `leads_db`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from services.common.auth import Role
from services.common.db import Database, service_dsn
from services.common.settings import get_settings
from services.common.testing import token_for


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


@pytest.fixture
def no_background_workers(monkeypatch):
    """The service leaves its queues (scoring, distribution, training) to the workers a test runs itself."""
    monkeypatch.setenv("VORONKA_WORKERS_ENABLED", "false")
    get_settings.cache_clear()


@pytest.fixture
async def leads_db(database_url) -> AsyncIterator[Database]:
    """A connection pool as the leads service's own role, for running its workers in the test."""
    db = Database(service_dsn(get_settings(), "leads"), schema="leads")
    await db.connect()
    yield db
    await db.close()


@pytest.fixture
async def admin(no_background_workers, stack, workspace) -> AsyncIterator[httpx.AsyncClient]:
    """An admin of the test's workspace (`client.user_id`), on a leads service without background workers."""
    await stack.start("leads")
    user_id = uuid.uuid4()
    async with stack.client("leads", token_for(workspace, Role.admin, user_id)) as client:
        client.user_id = user_id
        yield client
