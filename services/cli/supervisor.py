"""Runs the stack's processes: start, stream their logs, wait until healthy, stop them all together.

`start_stack()` is what `voronka up` runs; the e2e tests and the benchmarks call it too.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TextIO

from services.cli.embedded_pg import EmbeddedPostgres
from services.common.settings import SERVICES

HEALTH_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
_OUTPUT_TAIL_LINES = 40
_COLOURS = ("36", "33", "35", "32", "34", "91", "96")


class StartupError(RuntimeError):
    """A process did not become healthy; the message names it and shows its last output."""


@dataclass(frozen=True)
class ProcessSpec:
    """One process to run: it is healthy once GET http://<host>:<port><health_path> answers 200."""

    name: str
    argv: Sequence[str]
    port: int
    env: Mapping[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    health_path: str = "/healthz"

    @property
    def url(self) -> str:
        return _http_url(self.host, self.port)


class ChildProcess:
    """A running process and the last lines it printed."""

    def __init__(self, spec: ProcessSpec, popen: subprocess.Popen[bytes]) -> None:
        self.spec = spec
        self.popen = popen
        self.tail: deque[str] = deque(maxlen=_OUTPUT_TAIL_LINES)
        self.reader: threading.Thread | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def url(self) -> str:
        return self.spec.url

    def last_output(self) -> str:
        return "\n".join(self.tail) if self.tail else "(no output)"


class Supervisor:
    """Starts processes, relays their output prefixed by name, and stops all of them if one dies.

    Thread-based so it works the same under `voronka up`, pytest's event loop and the benchmarks. Signal
    handling is the caller's (only the main thread may install handlers): call `stop()` from it.
    """

    def __init__(
        self,
        *,
        output: TextIO | None = None,
        health_timeout: float = HEALTH_TIMEOUT_SECONDS,
        stop_timeout: float = STOP_TIMEOUT_SECONDS,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        self.output = output if output is not None else sys.stdout
        self.health_timeout = health_timeout
        self.stop_timeout = stop_timeout
        self.processes: dict[str, ChildProcess] = {}
        # Why the stack stopped on its own (a process died); None while healthy or after a requested stop.
        self.failure: str | None = None
        self._on_stop = on_stop
        self._write_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._monitor: threading.Thread | None = None
        self._colour = _supports_colour(self.output)
        self._width = 0

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self, specs: Sequence[ProcessSpec]) -> None:
        """Start every process, then wait until all are healthy; on failure stop all and raise."""
        self._width = max([self._width, *(len(spec.name) for spec in specs)])
        try:
            for spec in specs:
                _refuse_busy_port(spec.name, spec.host, spec.port)
            for spec in specs:
                self._spawn(spec)
            self._wait_healthy([self.processes[spec.name] for spec in specs])
        except BaseException:
            # Ctrl-C during startup too: leave nothing running behind us.
            self.stop()
            raise
        if self._monitor is None:
            self._monitor = threading.Thread(target=self._watch, name="supervisor-monitor", daemon=True)
            self._monitor.start()

    def wait(self, timeout: float | None = None) -> int:
        """Block until the stack stops (a process died, or `stop()` was called); 1 if something failed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        # Short waits keep the main thread responsive to signals.
        while not self._stopping.wait(0.2):
            if deadline is not None and time.monotonic() > deadline:
                break
        self._stopped.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return 1 if self.failure else 0

    @property
    def running(self) -> bool:
        return not self._stopping.is_set()

    def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL after `stop_timeout`), then run `on_stop`. Idempotent."""
        with self._state_lock:
            if self._stopping.is_set():
                already = True
            else:
                already = False
                self._stopping.set()
        if already:
            self._stopped.wait()
            return
        try:
            self._terminate_all()
        finally:
            try:
                if self._on_stop is not None:
                    self._on_stop()
            finally:
                self._stopped.set()

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def announce(self, text: str) -> None:
        """Print to the same output as the processes, without interleaving with their lines."""
        self._write(text)

    # -- internals ----------------------------------------------------------------------------------

    def _spawn(self, spec: ProcessSpec) -> None:
        if spec.name in self.processes:
            raise ValueError(f"a process named {spec.name!r} is already supervised")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **spec.env}
        popen = subprocess.Popen(
            list(spec.argv),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Its own process group: Ctrl-C reaches only us, and we stop the children in order.
            process_group=0,
        )
        child = ChildProcess(spec, popen)
        self.processes[spec.name] = child
        child.reader = threading.Thread(target=self._relay, args=(child,), name=f"relay-{spec.name}", daemon=True)
        child.reader.start()

    def _relay(self, child: ChildProcess) -> None:
        assert child.popen.stdout is not None
        prefix = f"{child.name:<{self._width}} | "
        if self._colour:
            colour = _COLOURS[list(self.processes).index(child.name) % len(_COLOURS)]
            prefix = f"\x1b[{colour}m{prefix}\x1b[0m"
        for raw in iter(child.popen.stdout.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            child.tail.append(line)
            self._write(prefix + line)
        child.popen.stdout.close()

    def _write(self, text: str) -> None:
        with self._write_lock:
            try:
                self.output.write(text + "\n")
                self.output.flush()
            except (OSError, ValueError):
                pass  # our stdout went away (closed pipe, captured stream closed); the children keep running

    def _wait_healthy(self, children: Sequence[ChildProcess]) -> None:
        pending = {child.name: child for child in children}
        deadline = time.monotonic() + self.health_timeout
        while pending:
            for name, child in list(pending.items()):
                code = child.popen.poll()
                if code is not None:
                    self._join_reader(child)
                    raise StartupError(
                        f"{name} exited with code {code} before it became healthy "
                        f"({child.spec.url}{child.spec.health_path}). Its last output:\n{child.last_output()}"
                    )
                if _is_healthy(child.spec):
                    del pending[name]
            if not pending:
                return
            if time.monotonic() > deadline:
                names = ", ".join(pending)
                tails = "\n".join(
                    f"--- {child.name} ({child.spec.url}{child.spec.health_path}) ---\n{child.last_output()}"
                    for child in pending.values()
                )
                raise StartupError(f"not healthy after {self.health_timeout:.0f}s: {names}\n{tails}")
            time.sleep(0.1)

    def _watch(self) -> None:
        while not self._stopping.wait(0.2):
            for child in list(self.processes.values()):
                code = child.popen.poll()
                if code is None or self._stopping.is_set():
                    continue
                self._join_reader(child)
                self.failure = f"{child.name} exited unexpectedly with code {code}"
                self._write(f"voronka: {self.failure}; stopping everything. Its last output:")
                self._write(child.last_output())
                self.stop()
                return

    def _terminate_all(self) -> None:
        alive = [child for child in self.processes.values() if child.popen.poll() is None]
        for child in alive:
            _signal(child.popen, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for child in alive:
            try:
                child.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._write(f"voronka: {child.name} did not stop within {self.stop_timeout:.0f}s; killing it")
                _signal(child.popen, signal.SIGKILL)
                child.popen.wait()
        for child in self.processes.values():
            self._join_reader(child)

    @staticmethod
    def _join_reader(child: ChildProcess) -> None:
        # The reader ends when the pipe closes; a grandchild holding it open must not hang us.
        if child.reader is not None:
            child.reader.join(timeout=2.0)


def _signal(popen: subprocess.Popen[bytes], signum: int) -> None:
    # The process may have exited (and been reaped elsewhere) since we looked.
    with contextlib.suppress(ProcessLookupError):
        popen.send_signal(signum)


def _reachable(host: str) -> str:
    """The address to connect to for a bind address (a wildcard bind is reached on loopback)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104


def _http_url(host: str, port: int) -> str:
    address = _reachable(host)
    return f"http://[{address}]:{port}" if ":" in address else f"http://{address}:{port}"


def _is_healthy(spec: ProcessSpec) -> bool:
    connection = http.client.HTTPConnection(_reachable(spec.host), spec.port, timeout=1.0)
    try:
        connection.request("GET", spec.health_path)
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def _refuse_busy_port(name: str, host: str, port: int) -> None:
    """Fail before starting anything when a port is taken: otherwise we might health-check a stranger."""
    address = _reachable(host)
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as probe:
        probe.settimeout(0.5)
        if probe.connect_ex((address, port)) == 0:
            raise StartupError(
                f"port {port} for {name} is already in use (is another `voronka up` running? try --base-port)"
            )


def _supports_colour(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and "NO_COLOR" not in os.environ


# -- the Voronka stack ------------------------------------------------------------------------------

GATEWAY = "gateway"
APP_FACTORIES = {
    "leads": "services.leads.app:create_app",
    "deals": "services.deals.app:create_app",
    "tasks": "services.tasks.app:create_app",
    "reporting": "services.reporting.app:create_app",
    GATEWAY: "gateway.app:create_app",
}


def service_ports(base_port: int) -> dict[str, int]:
    """The gateway on the base port, then leads +1, deals +2, tasks +3, reporting +4."""
    return {GATEWAY: base_port, **{service: base_port + 1 + i for i, service in enumerate(SERVICES)}}


def stack_specs(
    admin_url: str,
    *,
    base_port: int = 8000,
    host: str = "127.0.0.1",
    env: Mapping[str, str] | None = None,
) -> list[ProcessSpec]:
    """The five processes of the stack, each told the database and where the others listen."""
    ports = service_ports(base_port)
    shared_env = {
        # The admin URL: each service derives its own role's URL from it.
        "DATABASE_URL": admin_url,
        **{f"VORONKA_{service.upper()}_URL": _http_url(host, ports[service]) for service in SERVICES},
        **(env or {}),
    }
    return [
        ProcessSpec(
            name=name,
            argv=[
                sys.executable,
                "-m",
                "uvicorn",
                APP_FACTORIES[name],
                "--factory",
                "--host",
                host,
                "--port",
                str(ports[name]),
                "--no-access-log",
            ],
            port=ports[name],
            env=shared_env,
            host=host,
        )
        for name in (*SERVICES, GATEWAY)
    ]


class Stack:
    """A running Voronka: its processes, their URLs, and the embedded PostgreSQL if we started one."""

    def __init__(self, admin_url: str, supervisor: Supervisor, postgres: EmbeddedPostgres | None) -> None:
        self.admin_url = admin_url
        self.supervisor = supervisor
        self.postgres = postgres

    @property
    def urls(self) -> dict[str, str]:
        """name -> base URL, e.g. {"gateway": "http://127.0.0.1:8000", "leads": "http://127.0.0.1:8001"}."""
        return {name: child.url for name, child in self.supervisor.processes.items()}

    @property
    def gateway_url(self) -> str:
        return self.urls[GATEWAY]

    @property
    def failure(self) -> str | None:
        return self.supervisor.failure

    def wait(self, timeout: float | None = None) -> int:
        return self.supervisor.wait(timeout)

    def stop(self) -> None:
        """Stop every process, then the embedded PostgreSQL if this stack started it."""
        self.supervisor.stop()

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_stack(
    *,
    database_url: str | None = None,
    base_port: int = 8000,
    host: str = "127.0.0.1",
    env: Mapping[str, str] | None = None,
    run_migrations: bool = True,
    data_dir: Path | None = None,
    pg_port: int | None = None,
    output: TextIO | None = None,
    health_timeout: float = HEALTH_TIMEOUT_SECONDS,
    stop_timeout: float = STOP_TIMEOUT_SECONDS,
) -> Stack:
    """Start the whole stack and return once every process answers /healthz.

    Without `database_url` an embedded PostgreSQL in `data_dir` (default ./.voronka) is started, or reused
    if already running; `stop()` stops it only if this call started it. `env` is added to every child's.
    Raises StartupError (after stopping whatever did start) when a process fails to come up.
    """
    # Before PostgreSQL and migrations, so that a second `voronka up` fails at once.
    for name, port in service_ports(base_port).items():
        _refuse_busy_port(name, host, port)
    postgres: EmbeddedPostgres | None = None
    if database_url is None:
        postgres = EmbeddedPostgres(data_dir, pg_port)
        admin_url = postgres.start()
    else:
        admin_url = database_url
    stop_postgres = postgres.stop if postgres is not None else None
    try:
        if run_migrations:
            from services.cli.migrate import migrate

            migrate(admin_url)
        supervisor = Supervisor(
            output=output, health_timeout=health_timeout, stop_timeout=stop_timeout, on_stop=stop_postgres
        )
    except BaseException:
        if stop_postgres is not None:
            stop_postgres()
        raise
    # Supervisor.start stops everything, embedded PostgreSQL included, if a process fails to start.
    supervisor.start(stack_specs(admin_url, base_port=base_port, host=host, env=env))
    return Stack(admin_url, supervisor, postgres)
