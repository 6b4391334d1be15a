"""Fixtures for the CLI tests: free ports, a private embedded PostgreSQL, fake apps for the stack."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from services.cli import supervisor
from services.cli.embedded_pg import EmbeddedPostgres

FAKE_APP_DIR = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _free_port_range(count: int) -> int:
    """A base port with `count` consecutive free ports after it (the stack's gateway + four services)."""
    for _ in range(50):
        base = _free_port()
        if base + count > 65535:
            continue
        try:
            for port in range(base, base + count):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no {count} consecutive free ports")


@pytest.fixture
def free_port() -> Callable[[], int]:
    """Call it for a TCP port nobody listens on."""
    return _free_port


@pytest.fixture
def free_port_range() -> Callable[[int], int]:
    """Call it with n for a base port with n consecutive free ports (the stack needs 5)."""
    return _free_port_range


@pytest.fixture(scope="session")
def embedded_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    postgres = EmbeddedPostgres(tmp_path_factory.mktemp("pg"), _free_port())
    postgres.start()
    yield postgres
    postgres.stop()


@pytest.fixture
def fake_apps(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point the stack's five processes at the fake app; the env that puts it on the children's path."""
    for name in supervisor.APP_FACTORIES:
        monkeypatch.setitem(supervisor.APP_FACTORIES, name, "voronka_fake_app:create_app")
    return {"PYTHONPATH": str(FAKE_APP_DIR)}
