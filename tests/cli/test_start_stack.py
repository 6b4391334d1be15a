"""start_stack(): what `voronka up`, the e2e tests and the benchmarks run (here with stand-in apps)."""

from __future__ import annotations

import io
import json
import urllib.request
from collections.abc import Callable
from pathlib import Path

from services.cli.embedded_pg import EmbeddedPostgres
from services.cli.supervisor import start_stack


def get_json(url: str) -> dict[str, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        result: dict[str, str] = json.loads(response.read())
        return result


def test_every_process_is_told_the_database_and_where_the_others_listen(
    fake_apps: dict[str, str], embedded_pg: EmbeddedPostgres, free_port_range: Callable[[int], int]
) -> None:
    base = free_port_range(5)
    stack = start_stack(
        database_url=embedded_pg.admin_url,
        base_port=base,
        env=fake_apps,
        run_migrations=False,
        output=io.StringIO(),
    )
    try:
        assert stack.gateway_url == f"http://127.0.0.1:{base}"
        assert stack.urls["reporting"] == f"http://127.0.0.1:{base + 4}"
        for name in ("leads", "deals", "tasks", "reporting", "gateway"):
            env = get_json(stack.urls[name] + "/env")
            assert env["DATABASE_URL"] == embedded_pg.admin_url
            assert env["VORONKA_LEADS_URL"] == f"http://127.0.0.1:{base + 1}"
            assert env["VORONKA_DEALS_URL"] == f"http://127.0.0.1:{base + 2}"
            assert env["VORONKA_TASKS_URL"] == f"http://127.0.0.1:{base + 3}"
            assert env["VORONKA_REPORTING_URL"] == f"http://127.0.0.1:{base + 4}"
    finally:
        stack.stop()
    # Someone else's PostgreSQL is left alone.
    assert embedded_pg.is_running()


def test_an_embedded_postgres_the_stack_started_stops_with_it(
    fake_apps: dict[str, str],
    tmp_path: Path,
    free_port: Callable[[], int],
    free_port_range: Callable[[int], int],
) -> None:
    stack = start_stack(
        base_port=free_port_range(5),
        data_dir=tmp_path / "voronka",
        pg_port=free_port(),
        env=fake_apps,
        run_migrations=False,
        output=io.StringIO(),
    )
    assert stack.postgres is not None
    assert stack.postgres.started_by_us
    assert get_json(stack.urls["leads"] + "/env")["DATABASE_URL"] == stack.admin_url

    stack.stop()

    assert not stack.postgres.is_running()
    assert all(child.popen.poll() is not None for child in stack.supervisor.processes.values())
