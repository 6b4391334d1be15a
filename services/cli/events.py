"""`voronka events`: list the dead letters of each service's outbox and send them again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
import click

from services.cli.embedded_pg import admin_database
from services.common.db import asyncpg_dsn
from services.common.settings import SERVICES

DEAD_LETTER_COLUMNS = ("service", "subscriber", "event_id", "type", "attempts", "dead_at", "status", "error")
_ERROR_WIDTH = 60


async def list_dead_letters(admin_url: str, services: Sequence[str]) -> list[dict[str, Any]]:
    from services.common.outbox import list_dead_letters as list_in_schema

    rows: list[dict[str, Any]] = []
    conn: asyncpg.Connection = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        for service in services:
            rows.extend({"service": service, **row} for row in await list_in_schema(conn, service))
    finally:
        await conn.close()
    return rows


async def redrive(admin_url: str, services: Sequence[str], event_id: uuid.UUID | None) -> dict[str, int]:
    """Mark dead letters for redelivery; service -> how many."""
    from services.common.outbox import redrive_dead_letters

    counts: dict[str, int] = {}
    conn: asyncpg.Connection = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        for service in services:
            counts[service] = await redrive_dead_letters(conn, service, event_id)
    finally:
        await conn.close()
    return counts


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain aligned table (greppable, no box drawing)."""
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max([len(column), *(len(line[i]) for line in cells)]) for i, column in enumerate(columns)]
    lines = ["  ".join(column.upper().ljust(width) for column, width in zip(columns, widths, strict=True))]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in cells]
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return str(value.isoformat(timespec="seconds"))
    text = " ".join(str(value).split())  # errors carry newlines and tracebacks; keep one row per letter
    return text if len(text) <= _ERROR_WIDTH else text[: _ERROR_WIDTH - 1] + "…"


service_option: Callable[[Callable[..., Any]], Callable[..., Any]] = click.option(
    "--service",
    type=click.Choice(SERVICES),
    default=None,
    help="One service's outbox (default: all of them).",
)


@click.group()
def events() -> None:
    """Inspect and redeliver events that could not be delivered."""


@events.command("dead-letters")
@service_option
def dead_letters_command(service: str | None) -> None:
    """List events parked as dead letters after their last delivery attempt failed."""
    services = [service] if service else list(SERVICES)
    with admin_database() as admin_url:
        rows = asyncio.run(list_dead_letters(admin_url, services))
    if not rows:
        click.echo("No dead letters.", err=True)
        return
    click.echo(format_table(rows, DEAD_LETTER_COLUMNS))


@events.command("redrive")
@service_option
@click.option("--id", "event_id", type=click.UUID, default=None, help="Redeliver this event only.")
@click.option("--all", "redrive_all", is_flag=True, help="Redeliver every dead letter.")
def redrive_command(service: str | None, event_id: uuid.UUID | None, redrive_all: bool) -> None:
    """Send dead letters again: one event (--id) or all of them (--all)."""
    if (event_id is not None) == redrive_all:
        raise click.UsageError("Give exactly one of --id EVENT_ID or --all.")
    services = [service] if service else list(SERVICES)
    with admin_database() as admin_url:
        counts = asyncio.run(redrive(admin_url, services, event_id))
    for name, count in counts.items():
        if count or service:
            click.echo(f"{name}: {count} dead letter(s) marked for redelivery")
    total = sum(counts.values())
    if event_id is not None and total == 0:
        raise click.ClickException(f"No dead letter with event id {event_id}.")
    if not service:
        click.echo(f"total: {total}")
