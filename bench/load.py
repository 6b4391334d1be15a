"""A lean HTTP/1.1 load generator: keep-alive connections on asyncio protocols, closed loop and open loop.

On a 2-core machine the generator shares the CPU with the server it measures, so it does as little as it can
per request: no HTTP library (httpx costs several times more CPU per request), pre-built request heads, one
`bytes` join per request and a parser that reads only the status line and Content-Length.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

# A request still unanswered this long after the measured window is counted as an error and abandoned.
STRAGGLER_TIMEOUT_SECONDS = 30.0
# Below uvicorn's default keep-alive timeout (5 s).
IDLE_CONNECTION_SECONDS = 3.0


class ProtocolError(ConnectionError):
    """The server answered something this client does not parse (no Content-Length, garbled status)."""


@dataclass(frozen=True)
class Target:
    """Where requests go, and the head every request carries."""

    host: str
    port: int
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    method: str = "POST"

    def head(self) -> bytes:
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        return ("\r\n".join(lines) + "\r\nContent-Type: application/json\r\nContent-Length: ").encode()

    def request_builder(self) -> Callable[[bytes], bytes]:
        head = self.head()

        def build(body: bytes) -> bytes:
            return b"".join((head, str(len(body)).encode(), b"\r\n\r\n", body))

        return build


class HttpConnection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._body_start = 0
        self._end = -1  # where the response being read ends in the buffer; -1 while its head is incomplete
        self._status = 0
        self.closed = False

    # -- asyncio.Protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._waiter is None or self._waiter.done():
            return
        try:
            self._parse()
        except ProtocolError as exc:
            self._waiter.set_exception(exc)
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionResetError(f"connection closed: {exc}"))

    # -- client -------------------------------------------------------------------------------------

    async def send(self, request: bytes) -> tuple[int, bytes]:
        """Sends one request; the response's status and body."""
        if self.closed or self._transport is None:
            raise ConnectionResetError("connection closed")
        self._waiter = asyncio.get_running_loop().create_future()
        self._end = -1
        self._transport.write(request)
        return await self._waiter

    def close(self) -> None:
        if self._transport is not None and not self.closed:
            self._transport.close()
        self.closed = True

    def _parse(self) -> None:
        buffer = self._buffer
        if self._end < 0:
            head_end = buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = bytes(buffer[:head_end]).lower()
            try:
                self._status = int(head[9:12])
            except ValueError as exc:
                raise ProtocolError(f"bad status line: {head[:40]!r}") from exc
            at = head.find(b"\r\ncontent-length:")
            if at < 0:
                raise ProtocolError("response without Content-Length")
            line_end = head.find(b"\r\n", at + 2)
            length = int(head[at + 17 : line_end if line_end >= 0 else len(head)])
            self._body_start = head_end + 4
            self._end = self._body_start + length
        if len(buffer) < self._end:
            return
        body = bytes(buffer[self._body_start : self._end])
        del buffer[: self._end]
        assert self._waiter is not None
        self._waiter.set_result((self._status, body))


async def connect(host: str, port: int) -> HttpConnection:
    _, protocol = await asyncio.get_running_loop().create_connection(HttpConnection, host, port)
    return protocol


# -- results ------------------------------------------------------------------------------------------


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (q in 0..100); NaN when empty."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max/mean in milliseconds."""
    ordered = sorted(seconds)
    if not ordered:
        return {"p50_ms": math.nan, "p90_ms": math.nan, "p99_ms": math.nan, "max_ms": math.nan, "mean_ms": math.nan}
    return {
        "p50_ms": percentile(ordered, 50) * 1000,
        "p90_ms": percentile(ordered, 90) * 1000,
        "p99_ms": percentile(ordered, 99) * 1000,
        "max_ms": ordered[-1] * 1000,
        "mean_ms": sum(ordered) / len(ordered) * 1000,
    }


@dataclass
class ClosedLoopResult:
    clients: int
    seconds: float  # the measured window
    latencies: list[float] = field(default_factory=list)  # of the successful requests that ended in the window
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def record_error(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what)

    def as_json(self) -> dict[str, Any]:
        return {
            "clients": self.clients,
            "seconds": round(self.seconds, 3),
            "requests": len(self.latencies),
            "throughput_rps": len(self.latencies) / self.seconds if self.seconds else math.nan,
            **latency_summary(self.latencies),
            "errors": self.errors,
            "error_samples": self.error_samples,
        }


# -- closed loop --------------------------------------------------------------------------------------


async def closed_loop(
    target: Target,
    body: Callable[[int], bytes],
    *,
    clients: int,
    warmup: float,
    duration: float,
    expect_status: int = 201,
    on_window: Callable[[str], None] | None = None,
) -> ClosedLoopResult:
    """`clients` connections, each sending its next request as soon as the previous one is answered.

    Counts the requests that end inside the window [warmup, warmup + duration]; `on_window("start" | "end")`
    is called at its edges (the caller snapshots CPU times there).
    """
    build = target.request_builder()
    numbers = itertools.count()
    result = ClosedLoopResult(clients=clients, seconds=duration)
    started = time.perf_counter()
    window_start, window_end = started + warmup, started + warmup + duration

    async def client() -> None:
        conn: HttpConnection | None = None
        try:
            while True:
                sent = time.perf_counter()
                if sent >= window_end:
                    return
                try:
                    if conn is None or conn.closed:
                        conn = await connect(target.host, target.port)
                    status, answer = await conn.send(build(body(next(numbers))))
                except OSError as exc:  # ConnectionError and ProtocolError included
                    conn = None
                    if window_start <= time.perf_counter() <= window_end:
                        result.record_error(f"{type(exc).__name__}: {exc}")
                    await asyncio.sleep(0.01)
                    continue
                done = time.perf_counter()
                if not window_start <= done <= window_end:
                    continue
                if status == expect_status:
                    result.latencies.append(done - sent)
                else:
                    result.record_error(f"HTTP {status}: {answer[:200]!r}")
        finally:
            if conn is not None:
                conn.close()

    async def edges() -> None:
        await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
        if on_window is not None:
            on_window("start")
        await asyncio.sleep(max(0.0, window_end - time.perf_counter()))
        if on_window is not None:
            on_window("end")

    tasks = [asyncio.create_task(client()) for _ in range(clients)]
    await edges()
    _, stragglers = await asyncio.wait(tasks, timeout=STRAGGLER_TIMEOUT_SECONDS)
    for task in stragglers:
        task.cancel()
        result.record_error("no answer within the straggler timeout")
    await asyncio.gather(*tasks, return_exceptions=True)
    return result


# -- open loop ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """One open-loop request: when it was due, when its answer arrived (monotonic and wall clock)."""

    index: int
    due: float
    done: float
    done_wall: float
    status: int
    body: bytes

    @property
    def latency(self) -> float:
        # From when it was due, not when it went out: a backed-up generator must not hide server delays.
        return self.done - self.due


async def open_loop(
    target: Target,
    body: Callable[[int], bytes],
    *,
    rate: float,
    duration: float,
    on_answer: Callable[[Sent], None] | None = None,
    max_connections: int = 256,
) -> list[Sent]:
    """Sends `rate` requests a second for `duration` seconds whatever the answers take (new connections as
    needed, up to `max_connections`); returns every request, failed ones with status 0.
    """
    build = target.request_builder()
    idle: list[tuple[HttpConnection, float]] = []  # with when each was last answered; the freshest last
    slots = asyncio.Semaphore(max_connections)
    answers: list[Sent] = []

    async def checkout() -> HttpConnection:
        while idle:
            conn, last_used = idle.pop()
            # The server closes idle keep-alive connections (uvicorn: after 5 s); a request sent just then
            # would fail through no fault of the server's, so retire them before that.
            if not conn.closed and time.perf_counter() - last_used < IDLE_CONNECTION_SECONDS:
                return conn
            conn.close()
        return await connect(target.host, target.port)

    async def one(index: int, due: float) -> None:
        async with slots:
            status, answer = 0, b""
            conn: HttpConnection | None = None
            try:
                conn = await checkout()
                status, answer = await conn.send(build(body(index)))
            except OSError as exc:
                answer = f"{type(exc).__name__}: {exc}".encode()
                if conn is not None:
                    conn.close()
            sent = Sent(index, due, time.perf_counter(), time.time(), status, answer)
            if conn is not None and not conn.closed:
                idle.append((conn, sent.done))
        answers.append(sent)
        if on_answer is not None:
            on_answer(sent)

    tasks: set[asyncio.Task[None]] = set()
    started = time.perf_counter()
    for index in range(round(rate * duration)):
        due = started + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(index, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        _, stragglers = await asyncio.wait(set(tasks), timeout=STRAGGLER_TIMEOUT_SECONDS)
        for task in stragglers:
            task.cancel()
    for conn, _ in idle:
        conn.close()
    return answers
