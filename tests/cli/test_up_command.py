"""`voronka up` as a user runs it: a real process, stopped with Ctrl-C, and loud when a service dies."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# `up` with the stand-in apps and no migrations: this tests the command, not the services.
UP = """
import sys
import services.cli.migrate
from services.cli import supervisor
from services.cli.main import cli

services.cli.migrate.migrate = lambda url: print("migrated", url, flush=True)
for name in supervisor.APP_FACTORIES:
    supervisor.APP_FACTORIES[name] = "voronka_fake_app:create_app"
cli(["up", "--base-port", sys.argv[1]])
"""


class Up:
    def __init__(self, base_port: int) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO), str(Path(__file__).parent)]),
            # Never connected to by the stand-ins; set so that `up` does not start an embedded server.
            "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/voronka",
            "NO_COLOR": "1",
        }
        self.base_port = base_port
        self.process = subprocess.Popen(
            [sys.executable, "-c", UP, str(base_port)],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            assert self.process.poll() is None or text in self.output, self.output
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.output}"
            time.sleep(0.05)

    def finish(self, timeout: float = 20.0) -> int:
        code = self.process.wait(timeout)
        self._reader.join(timeout=5)
        return code


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def up(free_port_range: Callable[[int], int]) -> Iterator[Callable[[], Up]]:
    started: list[Up] = []

    def start() -> Up:
        started.append(Up(free_port_range(5)))
        return started[-1]

    yield start
    for running in started:
        if running.process.poll() is None:
            running.process.kill()
            running.finish()


def test_up_prints_urls_and_a_token_and_ctrl_c_stops_everything(up: Callable[[], Up]) -> None:
    running = up()
    running.wait_for("Voronka is up")
    running.wait_for("curl -s")

    base = running.base_port
    assert f"GraphQL (GraphiQL)  http://127.0.0.1:{base}/graphql" in running.output
    assert f"http://127.0.0.1:{base + 4}" in running.output
    assert "export TOKEN=ey" in running.output
    assert 'leads     | {"event": "started"' in running.output

    running.process.send_signal(signal.SIGINT)

    assert running.finish() == 0, running.output
    assert not any(listening(port) for port in range(base, base + 5))


def test_up_exits_non_zero_when_a_service_dies(up: Callable[[], Up]) -> None:
    running = up()
    running.wait_for("Voronka is up")

    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"http://127.0.0.1:{running.base_port + 2}/exit", timeout=5)

    assert running.finish() == 1, running.output
    assert "deals exited unexpectedly with code 3" in running.output
    assert not any(listening(port) for port in range(running.base_port, running.base_port + 5))
