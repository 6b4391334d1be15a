"""`voronka events`: dead letters of every service's outbox as a table, and redrive by id or all."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from click.testing import CliRunner

from services.cli.embedded_pg import EmbeddedPostgres
from services.cli.main import cli
from services.common import outbox
from services.common.settings import get_settings

EVENT_ID = uuid.UUID("0193a1f0-7c2e-7000-8000-0000000000e1")


@pytest.fixture
def database(embedded_pg: EmbeddedPostgres, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("DATABASE_URL", embedded_pg.admin_url)
    get_settings.cache_clear()
    yield embedded_pg.admin_url
    get_settings.cache_clear()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """The outbox functions replaced by recorders (their SQL is tested with the outbox)."""
    seen: list[tuple[str, Any]] = []

    async def list_dead_letters(conn: asyncpg.Connection, schema: str) -> list[dict[str, Any]]:
        assert await conn.fetchval("SELECT 1") == 1
        seen.append(("list", schema))
        if schema != "deals":
            return []
        return [
            {
                "subscriber": "reporting",
                "event_id": EVENT_ID,
                "type": "deal.stage_changed",
                "error": "HTTP 500 from http://127.0.0.1:8004/events:\nTraceback ...\n" + "x" * 200,
                "attempts": 8,
                "dead_at": dt.datetime(2025, 3, 1, 12, 30, tzinfo=dt.UTC),
                "status": "dead",
            }
        ]

    async def redrive_dead_letters(conn: asyncpg.Connection, schema: str, event_id: uuid.UUID | None) -> int:
        seen.append(("redrive", (schema, event_id)))
        return 1 if schema == "deals" else 0

    monkeypatch.setattr(outbox, "list_dead_letters", list_dead_letters)
    monkeypatch.setattr(outbox, "redrive_dead_letters", redrive_dead_letters)
    return seen


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, ["events", *args], catch_exceptions=False)


def test_dead_letters_of_all_services_show_as_one_row_each(database: str, calls: list[tuple[str, Any]]) -> None:
    result = run("dead-letters")

    assert result.exit_code == 0, result.output
    assert calls == [("list", "leads"), ("list", "deals"), ("list", "tasks"), ("list", "reporting")]
    header, row = result.stdout.splitlines()
    assert header.split() == [
        "SERVICE",
        "SUBSCRIBER",
        "EVENT_ID",
        "TYPE",
        "ATTEMPTS",
        "DEAD_AT",
        "STATUS",
        "ERROR",
    ]
    assert row.startswith("deals")
    assert str(EVENT_ID) in row
    assert "2025-03-01T12:30:00+00:00" in row
    assert "HTTP 500 from http://127.0.0.1:8004/events: Traceback" in row
    assert row.endswith("…")


def test_dead_letters_of_one_service(database: str, calls: list[tuple[str, Any]]) -> None:
    result = run("dead-letters", "--service", "tasks")

    assert result.exit_code == 0
    assert calls == [("list", "tasks")]
    assert result.stdout == ""
    assert "No dead letters." in result.stderr


def test_redrive_one_event_looks_in_every_service(database: str, calls: list[tuple[str, Any]]) -> None:
    result = run("redrive", "--id", str(EVENT_ID))

    assert result.exit_code == 0, result.output
    assert [schema for kind, (schema, event_id) in calls if event_id == EVENT_ID] == [
        "leads",
        "deals",
        "tasks",
        "reporting",
    ]
    assert "deals: 1 dead letter(s) marked for redelivery" in result.stdout


def test_redrive_all_of_one_service(database: str, calls: list[tuple[str, Any]]) -> None:
    result = run("redrive", "--service", "leads", "--all")

    assert result.exit_code == 0, result.output
    assert calls == [("redrive", ("leads", None))]


def test_redrive_of_an_unknown_event_fails(database: str, calls: list[tuple[str, Any]]) -> None:
    result = run("redrive", "--service", "leads", "--id", str(uuid.uuid4()))
    assert result.exit_code == 1
    assert "No dead letter with event id" in result.output


@pytest.mark.parametrize("args", [[], ["--all", "--id", str(EVENT_ID)]])
def test_redrive_needs_exactly_one_of_id_or_all(args: list[str]) -> None:
    result = run("redrive", *args)
    assert result.exit_code == 2
    assert "exactly one of --id EVENT_ID or --all" in result.output
