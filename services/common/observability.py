"""Request ids, JSON logs and Prometheus metrics for every process.

One pure-ASGI middleware does all three per request: it is on the hot path, so it stays cheap.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import random
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from prometheus_client import Counter, Gauge, Histogram
from starlette.requests import Request

from services.common.ids import new_id

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

HTTP_REQUESTS = Counter(
    "voronka_http_requests_total", "HTTP requests served", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "voronka_http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
OUTBOX_BACKLOG = Gauge("voronka_outbox_backlog", "Events not yet delivered", ["service", "subscriber"])
OUTBOX_LAG = Gauge(
    "voronka_outbox_lag_seconds", "Age of the oldest undelivered event", ["service", "subscriber"]
)
DELIVERIES = Counter(
    "voronka_event_deliveries_total", "Event deliveries attempted", ["service", "subscriber", "outcome"]
)
EVENTS_DELIVERED = Counter(
    "voronka_events_delivered_total", "Events delivered and acknowledged", ["service", "subscriber"]
)
DEAD_LETTERS = Gauge("voronka_dead_letters", "Events parked as dead letters", ["service", "subscriber"])
EVENTS_APPLIED = Counter(
    "voronka_events_applied_total", "Events received by this service", ["service", "outcome"]
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, carrying the request id of the request being served."""

    _skip = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in self._skip and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's own loggers go through ours; its access log is replaced by the middleware's line.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    # One line per delivery is the dispatcher's job (metrics); httpx's own INFO line per request is noise.
    logging.getLogger("httpx").setLevel(logging.WARNING)


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("voronka.access")
error_log = logging.getLogger("voronka.errors")


class RequestContextMiddleware:
    """Gives every request an X-Request-ID (the caller's, if it sent a sane one), times it and logs it."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        # prometheus_client's labels() builds and locks on every call; a route has few (method, status) pairs.
        self._metrics: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def _observe(self, method: str, route: str, status: int, elapsed: float) -> None:
        key = (method, route, status)
        children = self._metrics.get(key)
        if children is None:
            children = self._metrics[key] = (
                HTTP_REQUESTS.labels(self.service, method, route, str(status)),
                HTTP_LATENCY.labels(self.service, method, route),
            )
        children[0].inc()
        children[1].observe(elapsed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        parent = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if 0 < len(candidate) <= 128 and candidate.isprintable():
                    request_id = candidate
            elif name == b"traceparent":
                parent = value.decode("latin-1")
        request_id = request_id or str(new_id())
        token = request_id_var.set(request_id)
        trace_token = traceparent_var.set(child_traceparent(parent) if parent else None)
        started = time.perf_counter()
        status = 0  # until the response starts
        header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # Starlette runs the app's catch-all handler in ServerErrorMiddleware, outside this middleware:
            # there the request id is already gone and the response would bypass send_with_id. So the
            # handler (problems.py: log, masked 500) runs here, in the request's context, and the error goes
            # no further (it is logged once, with the request id).
            if status:
                # Mid-response: nothing can be sent any more; the server closes the unfinished response.
                error_log.exception("unhandled error after the response started",
                                    extra={"path": scope.get("path")})
            elif not await self._unexpected(scope, receive, send_with_id, exc):
                raise
        finally:
            status = status or 500
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self._observe(method, template, status, elapsed)
            if template not in ("/healthz", "/readyz", "/metrics"):
                access_log.info(
                    "request",
                    extra={"method": method, "path": scope.get("path"), "status": status,
                           "duration_ms": round(elapsed * 1000, 2)},
                )
            request_id_var.reset(token)
            traceparent_var.reset(trace_token)

    @staticmethod
    async def _unexpected(scope: Scope, receive: Receive, send: Send, exc: Exception) -> bool:
        """Answers with the app's own handler for `Exception`; False when it has none."""
        handlers: dict[Any, Any] = getattr(scope.get("app"), "exception_handlers", {})
        handler = handlers.get(Exception) or handlers.get(500)
        if handler is None:
            return False
        response = handler(Request(scope, receive), exc)
        if inspect.isawaitable(response):
            response = await response
        await response(scope, receive, send)
        return True


# W3C trace context: the request's (or the handled event's) trace, carried into the events it publishes.
traceparent_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("traceparent", default=None)


def _valid_traceparent(value: str) -> bool:
    parts = value.split("-")
    return (
        len(parts) == 4
        and len(parts[0]) == 2 and len(parts[1]) == 32 and len(parts[2]) == 16 and len(parts[3]) == 2
        and all(c in "0123456789abcdef" for c in value.replace("-", ""))
        and parts[1] != "0" * 32
    )


def child_traceparent(parent: str | None) -> str:
    """A new span in the parent's trace, or a new trace when there is no (valid) parent."""
    # Trace ids need to be unique, not secret: the PRNG saves a getrandom() system call per id.
    span = f"{random.getrandbits(64) or 1:016x}"
    if parent and _valid_traceparent(parent):
        _, trace_id, _, flags = parent.split("-")
        return f"00-{trace_id}-{span}-{flags}"
    return f"00-{random.getrandbits(128) or 1:032x}-{span}-01"


def current_traceparent() -> str:
    value = traceparent_var.get()
    if value is None:
        value = child_traceparent(None)
        traceparent_var.set(value)
    return value
