"""The embedded PostgreSQL: starts, answers, is shared by a second start, and only its starter stops it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import asyncpg

from services.cli.embedded_pg import EmbeddedPostgres, read_postmaster


async def test_embedded_postgres_answers_on_its_admin_url(embedded_pg: EmbeddedPostgres) -> None:
    conn = await asyncpg.connect(embedded_pg.admin_url)
    try:
        assert await conn.fetchval("SELECT current_database()") == "voronka"
        assert await conn.fetchval("SHOW max_connections") == "300"
        assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
    finally:
        await conn.close()


def test_second_start_reuses_the_running_server_and_leaves_it_running(
    embedded_pg: EmbeddedPostgres, free_port: Callable[[], int]
) -> None:
    # Asked for another port: the running server's port wins, and no second server is started.
    second = EmbeddedPostgres(embedded_pg.data_dir, free_port())
    assert second.start() == embedded_pg.admin_url
    assert not second.started_by_us

    second.stop()

    assert embedded_pg.is_running()
    assert embedded_pg.psql("SELECT 1").strip() == "1"


def test_ensure_database_creates_a_database_once(embedded_pg: EmbeddedPostgres) -> None:
    url = embedded_pg.ensure_database("voronka_cli_test")
    assert embedded_pg.ensure_database("voronka_cli_test") == url
    assert url.endswith("/voronka_cli_test")
    assert embedded_pg.psql("SELECT current_database()", database="voronka_cli_test").strip() == "voronka_cli_test"


def test_the_starter_stops_the_server_and_a_restart_keeps_the_data(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    postgres = EmbeddedPostgres(tmp_path / "data", free_port())
    postgres.start()
    postgres.psql("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")

    postgres.stop()
    assert not postgres.is_running()

    again = EmbeddedPostgres(tmp_path / "data", postgres.port)
    try:
        again.start()
        assert again.started_by_us
        assert again.psql("SELECT x FROM kept").strip() == "42"
    finally:
        again.stop()


def test_a_stale_pid_file_is_not_taken_for_a_running_server(tmp_path: Path) -> None:
    # After a crash the pid may belong to an unrelated process: here, this Python.
    pgdata = tmp_path / "pgdata"
    pgdata.mkdir()
    (pgdata / "postmaster.pid").write_text(f"{os.getpid()}\n{pgdata}\n1700000000\n5432\n/tmp\n127.0.0.1\n1 2\nready\n")

    assert read_postmaster(pgdata) is None


def test_the_socket_moves_to_tmp_when_the_data_dir_path_is_too_long(tmp_path: Path) -> None:
    short = EmbeddedPostgres(tmp_path / "d", 54329)
    deep = EmbeddedPostgres(tmp_path / ("x" * 120), 54329)

    assert short.socket_dir() == short.data_dir / "run"
    assert len(str(deep.socket_dir() / ".s.PGSQL.54329.lock")) < 100
