"""End-to-end fixtures: the stack's processes started by the launcher `voronka up` uses, on the test's database.

Processes come from `services.cli.supervisor` (`stack_specs`, `Supervisor`, `start_stack`), so the tests run
exactly the commands, environment and health checks of `make run`. Each process started through `Launcher`
gets its own supervisor: killing one (the point of several tests) must not take the others down with it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from services.cli.supervisor import (
    ChildProcess,
    Stack,
    Supervisor,
    service_ports,
    stack_specs,
    start_stack,
)
from services.common.settings import SERVICES
from services.common.testing import ServedApp, events_in
from services.reporting.app import create_app as create_reporting_app

# Shorter than the supervisor's 10 s: our processes are small and a stuck stop should fail fast.
STOP_TIMEOUT_SECONDS = 5.0


def free_port_block(count: int = 5) -> int:
    """A base port with `count` consecutive free ports after it: the gateway and the four services."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base: int = probe.getsockname()[1]
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


def process_env() -> dict[str, str]:
    """What every child process runs with: the suite's settings (TEST_ENV in tests/conftest.py, already in
    our environment: short leases, quick backoff), passed on explicitly so the children cannot miss them.
    """
    env = {key: value for key, value in os.environ.items() if key.startswith("VORONKA_")}
    # The peers' URLs come from the launcher, never from whatever the test process had lying around.
    for service in SERVICES:
        env.pop(f"VORONKA_{service.upper()}_URL", None)
    assert env.get("VORONKA_DISPATCHER_LEASE_SECONDS") == "2", "e2e timings assume the suite's 2 s leases"
    return env


@dataclass
class Launcher:
    """Starts single processes of the stack on one block of ports, each told where its peers are."""

    database_url: str
    base_port: int
    env: dict[str, str]
    supervisors: list[Supervisor] = field(default_factory=list)

    @property
    def ports(self) -> dict[str, int]:
        return service_ports(self.base_port)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    async def start(self, service: str, *, name: str | None = None, base_port: int | None = None) -> ChildProcess:
        """Starts `service` (or the gateway) and returns once it answers /healthz.

        With `base_port` the process listens in another block of ports (a second replica) but still talks to
        the peers of this launcher's block.
        """
        peers = {f"VORONKA_{s.upper()}_URL": self.url(s) for s in SERVICES}
        specs = stack_specs(self.database_url, base_port=base_port or self.base_port, env={**self.env, **peers})
        spec = next(s for s in specs if s.name == service)
        if name is not None:
            spec = replace(spec, name=name)
        supervisor = Supervisor(stop_timeout=STOP_TIMEOUT_SECONDS)
        self.supervisors.append(supervisor)
        await asyncio.to_thread(supervisor.start, [spec])
        return supervisor.processes[spec.name]

    async def start_replica(self, service: str, name: str) -> ChildProcess:
        """Another process of `service` on ports of its own, talking to the same peers and database."""
        return await self.start(service, name=name, base_port=free_port_block())

    async def stop(self, child: ChildProcess) -> None:
        """A graceful stop (SIGTERM), as an orchestrator would do it."""
        for supervisor in self.supervisors:
            if supervisor.processes.get(child.name) is child:
                await asyncio.to_thread(supervisor.stop)

    @staticmethod
    async def kill(child: ChildProcess) -> None:
        """SIGKILL: no shutdown hook runs, so the process hands back no lease and finishes no request."""
        os.kill(child.pid, signal.SIGKILL)
        await asyncio.to_thread(child.popen.wait)

    async def stop_all(self) -> None:
        await asyncio.gather(*(asyncio.to_thread(s.stop) for s in self.supervisors))


@pytest.fixture
async def full_stack(database_url: str) -> AsyncIterator[Stack]:
    """All five processes, started by `start_stack` exactly as `voronka up` does (with DATABASE_URL set, so
    no embedded PostgreSQL of its own; its migrate step finds the test's database already at head).
    """
    stack = await asyncio.to_thread(
        start_stack, database_url=database_url, base_port=free_port_block(), env=process_env(),
        stop_timeout=STOP_TIMEOUT_SECONDS,
    )
    try:
        yield stack
    finally:
        await asyncio.to_thread(stack.stop)


@pytest.fixture
async def launcher(database_url: str) -> AsyncIterator[Launcher]:
    running = Launcher(database_url, free_port_block(), process_env())
    try:
        yield running
    finally:
        await running.stop_all()


@pytest.fixture
async def unmigrated_launcher(server_url: str) -> AsyncIterator[Launcher]:
    """A launcher on a database nobody has migrated yet: the first deploy, before `voronka migrate`."""
    name = f"voronka_e2e_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    running = Launcher(with_database(server_url, name), free_port_block(), process_env())
    try:
        yield running
    finally:
        await running.stop_all()
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


ASGIApp = Callable[..., Any]
Message = MutableMapping[str, Any]


class WatchedConsumer:
    """An ASGI wrapper around a consumer service that records every delivery its app acknowledged.

    The wrapped app handles POST /events completely (its transaction commits) before the wrapper decides
    what to do with the answer. With `hold_first_delivery` it keeps the first answer back until `release()`:
    the consumer has applied the batch, the producer does not know it yet.
    """

    def __init__(self, app: ASGIApp, *, hold_first_delivery: bool = False) -> None:
        self.app = app
        self.deliveries: list[list[str]] = []  # event ids of each acknowledged delivery, in order
        self.held: list[str] | None = None
        self._hold = hold_first_delivery
        self._held = asyncio.Event()
        self._release = asyncio.Event()

    async def wait_until_held(self, timeout: float = 15.0) -> list[str]:
        await asyncio.wait_for(self._held.wait(), timeout)
        assert self.held is not None
        return self.held

    def release(self) -> None:
        self._release.set()

    def times_delivered(self) -> Counter[str]:
        return Counter(event_id for delivery in self.deliveries for event_id in delivery)

    async def __call__(self, scope: Message, receive: Callable[[], Any], send: Callable[[Message], Any]) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/events":
            await self.app(scope, receive, send)
            return
        request: list[Message] = []
        while True:
            message = await receive()
            request.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        replay = iter(request)

        async def replay_then_receive() -> Message:
            return next(replay, None) or await receive()

        answer: list[Message] = []

        async def keep(message: Message) -> None:
            answer.append(message)

        await self.app(scope, replay_then_receive, keep)
        if answer and answer[0].get("status") == 200:
            body = b"".join(m.get("body", b"") for m in request if m["type"] == "http.request")
            ids = [str(event["id"]) for event in events_in(body)]
            self.deliveries.append(ids)
            if self._hold:
                self._hold = False
                self.held = ids
                self._held.set()
                await self._release.wait()
        for message in answer:
            await send(message)  # to a producer that may be dead by now: uvicorn drops it


@pytest.fixture
async def watched_reporting(
    database_url: str, launcher: Launcher
) -> AsyncIterator[Callable[..., Awaitable[WatchedConsumer]]]:
    """Call it to serve the real reporting app, watched, in-process on the port the launcher's processes
    know as VORONKA_REPORTING_URL. Served from this event loop, so it reads the test's DATABASE_URL.
    """
    served: list[tuple[WatchedConsumer, ServedApp]] = []

    async def serve(*, hold_first_delivery: bool = False) -> WatchedConsumer:
        consumer = WatchedConsumer(create_reporting_app(), hold_first_delivery=hold_first_delivery)
        served.append((consumer, await ServedApp(consumer, launcher.ports["reporting"]).start()))
        return consumer

    try:
        yield serve
    finally:
        for consumer, app in served:
            consumer.release()  # a held answer would keep uvicorn's graceful shutdown waiting forever
            await app.stop()
