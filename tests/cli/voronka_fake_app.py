"""A stand-in for a Voronka app in the CLI tests: /healthz, /env shows its environment, /exit kills it.

Plain ASGI so a child starts in a fraction of a second; run with uvicorn like the real factories.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]


async def _app(
    scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                print(json.dumps({"event": "started", "pid": os.getpid()}), flush=True)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path == "/exit":
        os._exit(3)
    if path == "/healthz":
        status, body = 200, b"ok"
    elif path == "/env":
        keys = [k for k in os.environ if k == "DATABASE_URL" or k.startswith("VORONKA_")]
        status, body = 200, json.dumps({k: os.environ[k] for k in keys}).encode()
    else:
        status, body = 404, b"not found"
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


def create_app() -> Any:
    return _app
