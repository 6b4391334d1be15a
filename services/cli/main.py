"""The `voronka` command: run the stack for development, migrate, issue tokens, handle dead letters."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit, urlunsplit

import click

from services.cli.embedded_pg import (
    EmbeddedPostgres,
    EmbeddedPostgresError,
    admin_database,
    bin_dir,
    default_data_dir,
)
from services.cli.events import events
from services.cli.supervisor import GATEWAY, Stack, StartupError, start_stack
from services.cli.token import DEV_USER_ID, DEV_WORKSPACE, development_token
from services.common.auth import Role
from services.common.settings import SERVICES, get_settings

PEOPLE_ROLES = [role.value for role in Role if role is not Role.service]


@click.group()
def cli() -> None:
    """Voronka, an API-first sales CRM."""


cli.add_command(events)


@cli.command()
@click.option("--base-port", default=8000, show_default=True, help="The gateway's port; services take the next four.")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address every process binds to.")
def up(base_port: int, host: str) -> None:
    """Run the whole stack until Ctrl-C.

    Starts the embedded PostgreSQL unless DATABASE_URL is set, migrates, then runs the services and the
    gateway and prints their URLs and a development token.
    """
    database_url = get_settings().database_url
    if database_url is None:
        click.echo(f"voronka: no DATABASE_URL, so PostgreSQL runs from {default_data_dir()}", err=True)
    signals = _StopSignals()
    started = time.monotonic()
    try:
        stack = start_stack(database_url=database_url, base_port=base_port, host=host)
    except (StartupError, EmbeddedPostgresError) as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt as exc:
        click.echo(
            f"voronka: {exc.args[0] if exc.args else 'SIGINT'} during startup; stopped what had started", err=True
        )
        raise SystemExit(130) from None
    try:
        signals.running = True
        stack.supervisor.announce(_banner(stack, time.monotonic() - started))
        # Poll a flag rather than block on an event: a signal handler must not touch locks the main thread
        # may be holding.
        while stack.supervisor.running and signals.received is None:
            time.sleep(0.2)
        if signals.received is not None:
            click.echo(f"voronka: {signals.received}, stopping", err=True)
    finally:
        stack.stop()
    code = stack.wait()
    if code:
        raise click.ClickException(stack.failure or "a process failed")
    click.echo("voronka: stopped", err=True)


class _StopSignals:
    """Ctrl-C, SIGTERM and a closed terminal (SIGHUP) end `up`, always through the same clean stop.

    During startup the signal unwinds start_stack, which stops whatever had started; once running, the
    main loop notices `received` and stops the stack.
    """

    def __init__(self) -> None:
        self.running = False
        self.received: str | None = None
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if not self.running:
            raise KeyboardInterrupt(name)
        if self.received is None:
            self.received = name


def _banner(stack: Stack, seconds: float) -> str:
    token = development_token(get_settings(), workspace=DEV_WORKSPACE, role=Role.admin, user=str(DEV_USER_ID))
    gateway = stack.urls[GATEWAY]
    lines = [
        "",
        f"Voronka is up ({seconds:.1f}s). Ctrl-C stops everything.",
        "",
        f"  GraphQL (GraphiQL)  {gateway}/graphql",
        *(f"  {name:<19} {stack.urls[name]}" for name in SERVICES),
        f"  PostgreSQL          {_without_password(stack.admin_url)}",
        "",
        f"Development token (admin of workspace {DEV_WORKSPACE!r}, valid 30 days):",
        "",
        f"  export TOKEN={token}",
        "",
        f'  curl -s {gateway}/graphql -H "Authorization: Bearer $TOKEN" \\',
        "       -H 'Content-Type: application/json' -d '{\"query\": \"{ __typename }\"}'",
        "",
        "Other tokens: voronka token --workspace acme --role rep --user maria",
        "",
    ]
    return "\n".join(lines)


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@cli.command(short_help="Bring every service's schema up to date.")
def migrate() -> None:
    """Bring every service's schema up to date (roles, schemas, Alembic)."""
    from services.cli.migrate import migrate as run_migrations

    with admin_database() as admin_url:
        run_migrations(admin_url)
    click.echo("voronka: migrations applied", err=True)


@cli.command(short_help="Print a development token.")
@click.option("--workspace", required=True, help="A workspace UUID, or a name such as acme.")
@click.option("--role", type=click.Choice(PEOPLE_ROLES), required=True)
@click.option("--user", default=None, help="A user UUID or name (default: one stable user per workspace and role).")
@click.option("--ttl-days", type=click.FloatRange(min=0, min_open=True), default=30, show_default=True)
def token(workspace: str, role: str, user: str | None, ttl_days: float) -> None:
    """Print a development token (only the token, for TOKEN=$(voronka token ...))."""
    click.echo(development_token(get_settings(), workspace=workspace, role=Role(role), user=user, ttl_days=ttl_days))


@cli.group()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Default: $VORONKA_DATA_DIR or ./.voronka.",
)
@click.option("--port", type=int, default=None, help="Default: $VORONKA_PG_PORT or 54329.")
@click.pass_context
def pg(ctx: click.Context, data_dir: Path | None, port: int | None) -> None:
    """The embedded development PostgreSQL."""
    ctx.obj = EmbeddedPostgres(data_dir, port)


@pg.command("start")
@click.pass_obj
def pg_start(postgres: EmbeddedPostgres) -> None:
    """Start it and leave it running; print the admin URL."""
    try:
        click.echo(postgres.start())
    except EmbeddedPostgresError as exc:
        raise click.ClickException(str(exc)) from exc


@pg.command("stop")
@click.pass_obj
def pg_stop(postgres: EmbeddedPostgres) -> None:
    """Stop it, whoever started it."""
    if not postgres.is_running():
        click.echo(f"voronka: no PostgreSQL running from {postgres.pgdata}", err=True)
        return
    postgres.stop(force=True)


@pg.command("url", short_help="Print the running server's admin URL.")
@click.pass_obj
def pg_url(postgres: EmbeddedPostgres) -> None:
    """Print the running server's admin URL (for DATABASE_URL=$(voronka pg url))."""
    url = postgres.running_url()
    if url is None:
        raise click.ClickException(f"no PostgreSQL running from {postgres.pgdata} (voronka pg start)")
    click.echo(url)


@pg.command("psql", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def pg_psql(postgres: EmbeddedPostgres, args: tuple[str, ...]) -> None:
    """Open psql on the running server (extra arguments go to psql)."""
    url = postgres.running_url()
    if url is None:
        raise click.ClickException(f"no PostgreSQL running from {postgres.pgdata} (voronka pg start)")
    psql = str(bin_dir() / "psql")
    sys.stdout.flush()
    os.execv(psql, [psql, url, *args])  # noqa: S606 -- replace ourselves: psql owns the terminal


if __name__ == "__main__":
    cli()
