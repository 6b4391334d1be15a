"""Test fixtures: a real PostgreSQL (embedded, or DATABASE_URL), a migrated TEMPLATE and a fresh database per test."""

from __future__ import annotations

import asyncio
import importlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from services.cli.embedded_pg import EmbeddedPostgres
from services.cli.migrate import migrate
from services.common.auth import Role
from services.common.settings import SERVICES, get_settings
from services.common.testing import ServedApp, auth_headers, free_port, token_for

ROOT = Path(__file__).resolve().parents[1]

# Settings every in-process service in the tests runs with: quick retries, short leases.
TEST_ENV = {
    "VORONKA_ENV": "test",
    "VORONKA_LOG_LEVEL": "WARNING",
    "VORONKA_DISPATCHER_POLL_SECONDS": "0.5",
    "VORONKA_DISPATCHER_BACKOFF_BASE_SECONDS": "0.05",
    "VORONKA_DISPATCHER_BACKOFF_MAX_SECONDS": "0.5",
    "VORONKA_DISPATCHER_LEASE_SECONDS": "2",
    "VORONKA_DISPATCHER_TIMEOUT_SECONDS": "0.9",  # less than half the lease (Settings refuses more)
    "VORONKA_DISPATCHER_MAX_ATTEMPTS": "3",
}


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


@pytest.fixture(scope="session", autouse=True)
def _test_environment() -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in TEST_ENV}
    os.environ.update(TEST_ENV)
    get_settings.cache_clear()
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """The admin URL of the PostgreSQL the suite runs on: DATABASE_URL, or an embedded server."""
    explicit = os.environ.get("DATABASE_URL")
    if explicit:
        yield explicit
        return
    port = int(os.environ.get("VORONKA_TEST_PG_PORT", "54339"))
    postgres = EmbeddedPostgres(data_dir=ROOT / ".voronka" / "test", port=port)
    url = postgres.start()
    yield url
    postgres.stop()


async def _admin(server_url: str) -> asyncpg.Connection:
    return await asyncpg.connect(server_url)


@pytest.fixture(scope="session")
async def template_database(server_url: str) -> AsyncIterator[str]:
    """A database migrated once per session; every test gets a copy of it (CREATE DATABASE ... TEMPLATE)."""
    name = f"voronka_template_{os.getpid()}"
    conn = await _admin(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    await asyncio.to_thread(migrate, with_database(server_url, name))
    yield name
    conn = await _admin(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def database_url(
    server_url: str, template_database: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    """A fresh, migrated database for this test; DATABASE_URL points at it while the test runs."""
    name = f"voronka_test_{uuid.uuid4().hex[:16]}"
    conn = await _admin(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    finally:
        await conn.close()
    url = with_database(server_url, name)
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()
    conn = await _admin(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def admin_db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A superuser connection to the test's database, for looking behind the services' backs."""
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


class Stack:
    """Services served in-process over real HTTP on free ports, each knowing where the others are."""

    def __init__(self, ports: dict[str, int]) -> None:
        self.ports = ports
        self.running: dict[str, ServedApp] = {}

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    async def start(self, *services: str) -> None:
        for service in services:
            module = importlib.import_module(f"services.{service}.app")
            self.running[service] = await ServedApp(module.create_app(), self.ports[service]).start()

    async def stop(self, *services: str) -> None:
        for service in services or tuple(self.running):
            served = self.running.pop(service, None)
            if served is not None:
                await served.stop()

    def client(self, service: str, token: str | None = None) -> httpx.AsyncClient:
        headers = auth_headers(token) if token else {}
        return httpx.AsyncClient(base_url=self.url(service), headers=headers, timeout=10)


@pytest.fixture
async def stack(database_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Stack]:
    ports = {service: free_port() for service in SERVICES}
    for service, port in ports.items():
        monkeypatch.setenv(f"VORONKA_{service.upper()}_URL", f"http://127.0.0.1:{port}")
    get_settings.cache_clear()
    running = Stack(ports)
    yield running
    await running.stop()


@pytest.fixture
def workspace() -> uuid.UUID:
    return uuid.uuid4()


@pytest.fixture
def admin_token(workspace: uuid.UUID) -> str:
    return token_for(workspace, Role.admin)
