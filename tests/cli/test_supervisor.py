"""The supervisor: children become healthy, print under their name, stop together, and failures are loud."""

from __future__ import annotations

import io
import socket
import sys
import time
from collections.abc import Callable

import psutil
import pytest

from services.cli.supervisor import ProcessSpec, StartupError, Supervisor

SERVER = """
import http.server, os, signal, sys, threading
port, mode = int(sys.argv[1]), sys.argv[2]
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if mode == "dies-later":
    threading.Timer(0.5, lambda: os._exit(5)).start()
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
print('{"event": "listening", "port": %d}' % port, flush=True)
http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
"""


Server = Callable[..., ProcessSpec]


@pytest.fixture
def server(free_port: Callable[[], int]) -> Server:
    """server(name, mode="normal"): a tiny HTTP server with /healthz on a free port."""

    def make(name: str, mode: str = "normal") -> ProcessSpec:
        port = free_port()
        return ProcessSpec(name=name, argv=[sys.executable, "-c", SERVER, str(port), mode], port=port)

    return make


@pytest.fixture
def script(free_port: Callable[[], int]) -> Server:
    """script(name, code): a process that runs `code` and never listens."""

    def make(name: str, code: str) -> ProcessSpec:
        return ProcessSpec(name=name, argv=[sys.executable, "-c", code], port=free_port())

    return make


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_children_run_until_stop_and_then_are_all_gone(server: Server) -> None:
    stopped: list[bool] = []
    supervisor = Supervisor(output=io.StringIO(), on_stop=lambda: stopped.append(True))
    supervisor.start([server("leads"), server("deals")])
    pids = [child.pid for child in supervisor.processes.values()]
    assert all(child.popen.poll() is None for child in supervisor.processes.values())

    supervisor.stop()

    assert all(gone(pid) for pid in pids)
    assert stopped == [True]
    assert supervisor.wait(timeout=1) == 0
    assert supervisor.failure is None


def test_output_is_prefixed_with_the_process_name(server: Server) -> None:
    output = io.StringIO()
    with Supervisor(output=output) as supervisor:
        spec = server("reporting")
        supervisor.start([spec, server("gateway")])
        deadline = time.monotonic() + 5
        while f'reporting | {{"event": "listening", "port": {spec.port}}}' not in output.getvalue():
            assert time.monotonic() < deadline, output.getvalue()
            time.sleep(0.05)


def test_a_child_that_exits_during_startup_is_named_with_its_last_output(server: Server, script: Server) -> None:
    supervisor = Supervisor(output=io.StringIO())
    healthy = server("leads")
    crashing = script("deals", "print('relation deals.deal does not exist'); raise SystemExit(4)")

    with pytest.raises(StartupError) as failure:
        supervisor.start([healthy, crashing])

    message = str(failure.value)
    assert "deals exited with code 4" in message
    assert "relation deals.deal does not exist" in message
    # Whatever did start is stopped again.
    assert all(child.popen.poll() is not None for child in supervisor.processes.values())


def test_a_child_that_never_answers_times_out_by_name(server: Server, script: Server) -> None:
    supervisor = Supervisor(output=io.StringIO(), health_timeout=1.0)
    silent = script("tasks", "import time; print('warming up', flush=True); time.sleep(60)")

    with pytest.raises(StartupError) as failure:
        supervisor.start([server("leads"), silent])

    message = str(failure.value)
    assert "not healthy after 1s: tasks" in message
    assert "warming up" in message
    assert all(child.popen.poll() is not None for child in supervisor.processes.values())


def test_a_child_dying_later_stops_everything_and_reports_failure(server: Server) -> None:
    output = io.StringIO()
    stopped: list[bool] = []
    supervisor = Supervisor(output=output, on_stop=lambda: stopped.append(True))
    supervisor.start([server("leads"), server("tasks", "dies-later")])
    leads = supervisor.processes["leads"]

    assert supervisor.wait(timeout=10) == 1

    assert supervisor.failure == "tasks exited unexpectedly with code 5"
    assert "tasks exited unexpectedly" in output.getvalue()
    assert leads.popen.poll() is not None
    assert stopped == [True]


def test_a_child_ignoring_sigterm_is_killed_after_the_stop_timeout(server: Server) -> None:
    supervisor = Supervisor(output=io.StringIO(), stop_timeout=0.5)
    supervisor.start([server("gateway", "stubborn")])
    child = supervisor.processes["gateway"]

    started = time.monotonic()
    supervisor.stop()

    assert child.popen.returncode == -9
    assert time.monotonic() - started < 5


def test_a_busy_port_is_refused_before_anything_starts(server: Server) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        busy = ProcessSpec(name="gateway", argv=[sys.executable, "-c", "pass"], port=port)
        supervisor = Supervisor(output=io.StringIO())

        with pytest.raises(StartupError, match=f"port {port} for gateway is already in use"):
            supervisor.start([server("leads"), busy])

    assert supervisor.processes == {}
