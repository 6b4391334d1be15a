"""Helpers for the test suite: a service served over real HTTP in-process, tokens, and polling."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import orjson
import uvicorn

from services.common.auth import Role, issue_token, service_token
from services.common.settings import get_settings
from services.common.signing import DeliverySigner

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def token_for(workspace_id: uuid.UUID, role: Role = Role.admin, user_id: uuid.UUID | None = None) -> str:
    """A person's token; for Role.service, a service token (which is not bound to a workspace)."""
    if role is Role.service:
        return service_token(get_settings())
    return issue_token(get_settings(), workspace_id=workspace_id, user_id=user_id or uuid.uuid4(), role=role)


def auth_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def eventually(
    probe: Callable[[], Awaitable[T]], until: Callable[[T], bool], *, timeout: float = 15.0, every: float = 0.05
) -> T:
    """Polls `probe` until `until(result)` holds; fails with the last result after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if until(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {result!r}")
        await asyncio.sleep(every)


class ServedApp:
    """An ASGI app served by uvicorn on 127.0.0.1:`port` inside the test's event loop: real HTTP."""

    def __init__(self, app: Any, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False,
                                lifespan="on")
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> ServedApp:
        self._server.should_exit = False
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        return self

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
            self._task = None


def events_in(body: bytes) -> list[dict[str, Any]]:
    """The CloudEvents of a delivery body: one event (structured mode) or a JSON array (batched mode)."""
    parsed = orjson.loads(body)
    events: list[dict[str, Any]] = parsed if isinstance(parsed, list) else [parsed]
    return events


async def deliver_events(client: httpx.AsyncClient, *events: dict[str, Any]) -> None:
    """POSTs CloudEvents to the service `client` points at as a dispatcher delivers them (one signed batch to
    /events), asserting every one was applied."""
    signer = DeliverySigner(get_settings().events_secret.get_secret_value())
    body = orjson.dumps(list(events))
    response = await client.post(
        "/events", content=body,
        headers={**signer.headers(body), "content-type": "application/cloudevents-batch+json"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["failure"] is None, response.text
