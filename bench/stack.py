"""Starting and stopping what the benchmarks measure: PostgreSQL, a fresh database each, the services, the baseline.

Services run with the exact command and environment `voronka up` gives them (`supervisor.stack_specs`), but
their output goes to log files under .voronka/bench/logs instead of through the supervisor's relay threads:
those would run inside the load generator's process and take its CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from services.cli.embedded_pg import EmbeddedPostgres, read_postmaster
from services.cli.supervisor import ProcessSpec, service_ports, stack_specs

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / ".voronka" / "bench"
LOG_DIR = DATA_DIR / "logs"
# Not the development server's 54329 nor the test suite's: the bench drops and creates databases freely.
DEFAULT_PG_PORT = 54349
TEMPLATE_DATABASE = "voronka_bench_template"
BENCH_DATABASE = "voronka_bench"
HOST = "127.0.0.1"
HEALTH_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0


def reset_logs() -> None:
    """Empties the process logs of the previous bench run (a write run logs a line per request)."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    for path in LOG_DIR.iterdir():
        if path.is_file():
            path.unlink()


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


class BenchPostgres:
    """The server the benchmarks run on: DATABASE_URL's if set, else an embedded one in .voronka/bench.

    Only the bench's own databases (voronka_bench, voronka_bench_template) are ever created or dropped.
    """

    def __init__(self, database_url: str | None, pg_port: int = DEFAULT_PG_PORT) -> None:
        self._explicit_url = database_url
        self._embedded = None if database_url else EmbeddedPostgres(DATA_DIR, pg_port, database="postgres")
        self.server_url = database_url or ""

    @property
    def embedded(self) -> bool:
        return self._embedded is not None

    def start(self) -> None:
        if self._embedded is not None:
            self.server_url = self._embedded.start()

    def stop(self) -> None:
        if self._embedded is not None:
            self._embedded.stop()

    def postmaster_pid(self) -> int | None:
        """The postmaster's pid when the server runs on this machine from our data directory."""
        if self._embedded is None:
            return None
        status = read_postmaster(self._embedded.pgdata)
        return status.pid if status else None

    def url(self, database: str) -> str:
        return with_database(self.server_url, database)

    async def prepare_template(self) -> None:
        """A migrated database every benchmark's fresh database is cloned from."""
        from services.cli.migrate import migrate

        await self._recreate(TEMPLATE_DATABASE, template=None)
        # migrate() runs its own event loop: give it a thread.
        await asyncio.to_thread(migrate, self.url(TEMPLATE_DATABASE))

    async def fresh_database(self) -> str:
        """Drops and re-creates voronka_bench from the template; its admin URL."""
        await self._recreate(BENCH_DATABASE, template=TEMPLATE_DATABASE)
        return self.url(BENCH_DATABASE)

    async def server_version(self) -> str:
        conn = await asyncpg.connect(self.server_url)
        try:
            version: str = await conn.fetchval("SHOW server_version")
            return version
        finally:
            await conn.close()

    async def _recreate(self, name: str, *, template: str | None) -> None:
        conn = await asyncpg.connect(self.server_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        finally:
            await conn.close()


def free_port_block(count: int, *, first: int = 18100, last: int = 30000) -> int:
    """A base port with `count` consecutive free ports from it (the stack's layout: gateway, then services).

    Searched below the ephemeral range: a load run leaves thousands of client ports in TIME_WAIT there.
    """
    for base in range(first, last - count, 10):
        try:
            for port in range(base, base + count):
                with socket.socket() as probe:
                    # As uvicorn binds: TIME_WAIT leftovers of an earlier run do not make a port busy.
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    probe.bind((HOST, port))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no {count} consecutive free ports in {first}..{last}")


@dataclass
class Running:
    """A process the bench started, and where its output goes."""

    spec: ProcessSpec
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def port(self) -> int:
        return self.spec.port

    def last_output(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no output)"


class Processes:
    """The service and baseline processes of one benchmark; leaving the `async with` stops every one."""

    def __init__(self, admin_url: str, *, env: Mapping[str, str] | None = None) -> None:
        self.admin_url = admin_url
        self.env = dict(env or {})
        # The stack's five ports (gateway, then the services), and one more for the baseline.
        self.base_port = free_port_block(6)
        self.ports = service_ports(self.base_port)
        self.baseline_port = self.base_port + 5
        self.running: dict[str, Running] = {}
        LOG_DIR.mkdir(parents=True, exist_ok=True)

    def service_spec(self, name: str, env: Mapping[str, str] | None = None) -> ProcessSpec:
        """The process `voronka up` would run for this service, told where its peers listen."""
        specs = stack_specs(self.admin_url, base_port=self.base_port, host=HOST, env={**self.env, **(env or {})})
        spec = next(s for s in specs if s.name == name)
        # /readyz: the pool is connected and the schema is at head, not only "the process is alive".
        return ProcessSpec(spec.name, spec.argv, spec.port, spec.env, spec.host, health_path="/readyz")

    async def start_service(self, name: str, env: Mapping[str, str] | None = None) -> Running:
        return await self.start(self.service_spec(name, env))

    async def start(self, spec: ProcessSpec) -> Running:
        log_path = LOG_DIR / f"{spec.name}.log"
        log_file = open(log_path, "ab")  # noqa: SIM115 -- closed in stop()
        popen = subprocess.Popen(
            list(spec.argv),
            env={**os.environ, "PYTHONUNBUFFERED": "1", **spec.env},
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
        running = Running(spec, popen, log_path, log_file)
        self.running[spec.name] = running
        try:
            await _wait_healthy(running)
        except BaseException:
            self.stop(spec.name)
            raise
        return running

    def stop(self, name: str) -> None:
        running = self.running.pop(name, None)
        if running is None:
            return
        with contextlib.suppress(ProcessLookupError):
            running.popen.send_signal(signal.SIGTERM)
        try:
            running.popen.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                running.popen.kill()
            running.popen.wait()
        running.log_file.close()

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)

    async def __aenter__(self) -> Processes:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_all()


def baseline_spec(database_url: str, port: int) -> ProcessSpec:
    """The baseline app, served the way the services are: one uvicorn process (uvloop, httptools)."""
    argv: Sequence[str] = [
        sys.executable, "-m", "uvicorn", "bench.baseline_app:create_app", "--factory",
        "--host", HOST, "--port", str(port), "--no-access-log",
    ]
    return ProcessSpec("baseline", argv, port, {"BENCH_BASELINE_DATABASE_URL": database_url}, HOST, "/healthz")


async def _wait_healthy(running: Running) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT_SECONDS
    while True:
        code = running.popen.poll()
        if code is not None:
            raise RuntimeError(f"{running.spec.name} exited with {code} on start:\n{running.last_output()}")
        if await _status(running.spec.host, running.spec.port, running.spec.health_path) == 200:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{running.spec.name} not ready after {HEALTH_TIMEOUT_SECONDS:.0f}s:\n"
                               f"{running.last_output()}")
        await asyncio.sleep(0.1)


async def _status(host: str, port: int, path: str) -> int:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except (OSError, TimeoutError):
        return 0
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        line = await asyncio.wait_for(reader.readline(), 2.0)
        return int(line.split()[1]) if line.startswith(b"HTTP/") else 0
    except (OSError, TimeoutError, ValueError, IndexError):
        return 0
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
