"""Benchmark: inbound webhooks, POST /v1/inbound/{source_id} at 16 closed-loop clients, and the worker behind it.

A source is created through POST /v1/sources (no mapping: its payloads are read by the field aliases) in a
workspace whose default phone region is RU. Each request is a web form's JSON (name, email, a phone in a national
format, company, message, UTM tags) signed as Standard Webhooks senders sign: a fresh webhook-id, the current
webhook-timestamp and `v1,` HMAC-SHA256 of `{id}.{timestamp}.{body}` with the source's secret.

1. The 202 path alone (leads started with VORONKA_WORKERS_ENABLED=false, so nothing else runs in the process):
   signed requests, alternating with the baseline; then one run with the source's `?token=` instead of a
   signature. Every accepted request is a pending row of leads.inbound_requests: the backlog for step 2.
2. The worker on that backlog: leads restarts with its workers on and the bench polls the queue until it is
   empty (or for at most --webhook-drain-seconds): leads processed per second, and what the CPU did meanwhile.
3. As deployed: the same signed load with the worker on in the same process, turning requests into leads while
   more arrive. Both rates in the window (PostgreSQL clock: received_at and processed_at), and how long the
   backlog took to clear after the load stopped.
4. With py-spy: a further as-deployed run, not counted above, to see where the process's CPU goes.

The baseline is bench/baseline_app.py: bare FastAPI + asyncpg, two inserts (a lead and its outbox event) in one
transaction. The 202 path does a comparable amount of database work (read the source, insert the raw request
with pg_notify, in one transaction), and on top of it authenticates the sender (HMAC) and reads the raw body.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from bench import profiling
from bench.baseline_app import SCHEMA_SQL
from bench.batch_ingest import (
    COMPANIES,
    PHONE_FORMATS,
    Window,
    admin_token,
    api,
    email_of,
    median_run,
    person_name,
    phone_digits,
    ratio,
    wait_delivered,
)
from bench.cpu import CpuMeter
from bench.leads_write import lead_body
from bench.load import Target, closed_loop
from bench.options import Options
from bench.stack import HOST, LOG_DIR, BenchPostgres, Processes, Running, baseline_spec

TARGET_RPS = 1000.0
TARGET_P99_MS = 50.0
WORKERS_OFF = {"VORONKA_WORKERS_ENABLED": "false"}
POLL_SECONDS = 0.2
SESSION_SAMPLE_SECONDS = 0.02
# Request numbers of each run start this far apart, so that every run's leads are new people.
RUN_STRIDE = 10_000_000

PENDING = "SELECT count(*) FROM leads.inbound_requests WHERE status = 'pending'"

WEBHOOK_ACTIVITIES: tuple[profiling.Rule, ...] = (
    ("outbox dispatcher (sequencer, courier, httpx)", profiling.ANY_FRAME,
     ("services/common/dispatcher.py", "/httpx/", "/httpcore/", "/h11/", "_process_notification (")),
    ("worker: validate + normalize (validate_lead)", profiling.ANY_FRAME, ("validate_lead (",)),
    ("worker: parse body + mapping", profiling.ANY_FRAME, ("parse_body (", "apply_mapping (")),
    ("worker: capture (claims, lead, touch, event, outbox)", profiling.ANY_FRAME, ("capture (",)),
    ("worker: claim batch, savepoints, status updates", profiling.ANY_FRAME,
     ("InboundWorker.", "_quarantine (", "QueueWorker.")),
    ("202 path: signature check (standardwebhooks)", profiling.ANY_FRAME,
     ("signature_matches (", "/standardwebhooks/")),
    ("202 path: store_request (insert + pg_notify)", profiling.ANY_FRAME, ("store_request (",)),
    ("202 path: source lookup", profiling.ANY_FRAME, ("source_for_inbound (",)),
    ("202 path: body read", profiling.ANY_FRAME, ("_read_body (",)),
    ("202 path: transaction begin/commit, pool", profiling.ANY_FRAME,
     ("transaction (", "asyncpg/transaction.py", "asyncpg/pool.py")),
    ("202 path: receive() itself, answer", profiling.ANY_FRAME, ("receive (", "model_response (")),
    *profiling._SERVICE_TAIL,
)


def form_body(n: int) -> bytes:
    """What a landing page's form handler posts for person n."""
    first, last = person_name(n)
    digits = phone_digits(n)
    return orjson.dumps({
        "name": f"{first} {last}", "email": email_of(n), "phone": PHONE_FORMATS[n % len(PHONE_FORMATS)](digits),
        "company": COMPANIES[n % len(COMPANIES)], "message": "Please call me back about the price list.",
        "utm_source": "yandex", "utm_medium": "cpc", "utm_campaign": "spring",
    })


@dataclass(frozen=True)
class SignedTarget(Target):
    """A Target whose every request is signed the Standard Webhooks way, with its own message id."""

    secret: str = ""

    def request_builder(self) -> Callable[[bytes], bytes]:
        key = base64.b64decode(self.secret.removeprefix("whsec_"))
        head = (f"{self.method} {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                "Content-Type: application/json\r\n").encode()
        prefix = uuid.uuid4().hex[:12]
        numbers = itertools.count()

        def build(body: bytes) -> bytes:
            message_id = f"msg_{prefix}_{next(numbers)}".encode()
            stamp = str(int(time.time())).encode()
            digest = hmac.new(key, b"%s.%s.%s" % (message_id, stamp, body), hashlib.sha256).digest()
            return b"".join((
                head, b"webhook-id: ", message_id, b"\r\nwebhook-timestamp: ", stamp,
                b"\r\nwebhook-signature: v1,", base64.b64encode(digest), b"\r\nContent-Length: ",
                str(len(body)).encode(), b"\r\n\r\n", body,
            ))

        return build


async def _measure(
    target: Target, body: Callable[[int], bytes], options: Options, meter: CpuMeter, *, expect_status: int,
    duration: float | None = None, on_start: Callable[[], None] | None = None,
) -> dict[str, Any]:
    window = Window(meter, on_start)
    walls: dict[str, float] = {}

    def on_window(edge: str) -> None:
        walls[edge] = time.time()
        window(edge)

    result = await closed_loop(target, body, clients=options.webhook_clients, warmup=options.warmup,
                               duration=duration or options.duration, expect_status=expect_status,
                               on_window=on_window)
    return {**result.as_json(), "cpu_cores": window.cores(), "window_wall": [walls["start"], walls["end"]]}


async def _pending(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval(PENDING)
    return count


class SessionSampler:
    """Samples what leads' pooled connections are doing (pg_stat_activity) while the worker drains its queue:
    `active` is PostgreSQL executing a statement, `idle in transaction` is PostgreSQL waiting for the leads
    process to send the next one (Python at work, or waiting for the event loop)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.counts: Counter[str] = Counter()
        self.samples = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            rows = await self.conn.fetch(
                """
                SELECT state || coalesce(' (' || wait_event_type || ': ' || wait_event || ')', '') AS what
                FROM pg_stat_activity
                WHERE application_name = 'voronka-leads' AND state IN ('active', 'idle in transaction')
                """
            )
            self.samples += 1
            self.counts.update(r["what"] for r in rows)
            await asyncio.sleep(SESSION_SAMPLE_SECONDS)

    def shares(self) -> dict[str, Any]:
        """Per state: the share of samples that found a leads connection in it (0..1 each, per connection)."""
        return {"samples": self.samples,
                "states": {what: round(n / self.samples, 3) for what, n in self.counts.most_common(8)}
                if self.samples else {}}


async def _drain(conn: asyncpg.Connection, sampler_conn: asyncpg.Connection, meter: CpuMeter,
                 limit_seconds: float) -> dict[str, Any]:
    """Polls the queue from the moment the worker started until it is empty or `limit_seconds` passed."""
    backlog = await _pending(conn)
    sampler, stop = SessionSampler(sampler_conn), asyncio.Event()
    sampling = asyncio.create_task(sampler.run(stop))
    start = meter.snapshot()
    started = time.monotonic()
    samples: list[tuple[float, int]] = [(0.0, backlog)]
    while (left := samples[-1][1]) > 0 and time.monotonic() - started < limit_seconds:
        await asyncio.sleep(POLL_SECONDS)
        samples.append((time.monotonic() - started, await _pending(conn)))
    cpu = CpuMeter.cores(start, meter.snapshot())
    stop.set()
    await sampling
    moving = next((s for s in samples if s[1] < backlog), None)
    end = samples[-1]
    processed = backlog - left
    # From the first poll that saw progress to the last one: the worker's steady rate, start-up left out.
    steady = ((moving[1] - end[1]) / (end[0] - moving[0])
              if moving is not None and end[0] > moving[0] else None)
    return {
        "backlog": backlog, "processed": processed, "left": left, "seconds": round(end[0], 2),
        "first_progress_after_s": round(moving[0], 2) if moving else None,
        "leads_per_s": steady, "leads_per_s_including_start": processed / end[0] if end[0] else None,
        "cpu_cores": cpu,
        "sessions": sampler.shares(),
        "progress": [{"t": round(t, 2), "pending": p} for t, p in samples[:: max(1, len(samples) // 60)]],
    }


async def _outcomes(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT status || coalesce(':' || outcome, '') AS what, count(*) AS n FROM leads.inbound_requests "
        "GROUP BY 1 ORDER BY 1"
    )
    return {r["what"]: r["n"] for r in rows}


async def _window_rates(conn: asyncpg.Connection, window: list[float]) -> dict[str, Any]:
    """Requests received and processed inside a run's window, by PostgreSQL's clock."""
    row = await conn.fetchrow(
        """
        SELECT count(*) FILTER (WHERE received_at >= to_timestamp($1) AND received_at < to_timestamp($2)) AS received,
               count(*) FILTER (WHERE processed_at >= to_timestamp($1) AND processed_at < to_timestamp($2))
                   AS processed
        FROM leads.inbound_requests
        """,
        window[0], window[1],
    )
    assert row is not None
    seconds = window[1] - window[0]
    return {"received_per_s": row["received"] / seconds, "processed_per_s": row["processed"] / seconds}


async def _restart(processes: Processes, meter: CpuMeter, env: dict[str, str] | None = None) -> Running:
    processes.stop("leads")
    leads = await processes.start_service("leads", env=env)
    meter.pids["leads"] = leads.pid
    return leads


async def _clear_backlog(conn: asyncpg.Connection, processes: Processes, meter: CpuMeter) -> tuple[Running, int]:
    """What the worker did not get to within the limit is dropped (leads stopped first), so that the next step
    starts from an empty queue."""
    processes.stop("leads")
    dropped = await conn.execute("DELETE FROM leads.inbound_requests WHERE status = 'pending'")
    leads = await _restart(processes, meter)
    return leads, int(dropped.split()[-1])


async def _profile(
    leads: Running, target: Target, body: Callable[[int], bytes], options: Options, meter: CpuMeter
) -> dict[str, Any]:
    raw, svg = LOG_DIR / "webhook-profile.txt", options.results_dir / "webhook-profile.svg"
    recordings: list[profiling.Recording] = []

    def start_sampling() -> None:
        recordings.append(profiling.record(leads.pid, raw=raw, svg=svg, seconds=options.profile_seconds,
                                           log=LOG_DIR / "py-spy.log"))

    run = await _measure(target, body, options, meter, expect_status=202, duration=options.profile_seconds + 1.0,
                         on_start=start_sampling)
    problems = await asyncio.to_thread(recordings[0].wait) if recordings else ["py-spy did not start"]
    summary = (profiling.summarize(raw, seconds=options.profile_seconds, rate=recordings[0].rate,
                                   rules=WEBHOOK_ACTIVITIES) if raw.exists() else {})
    return {"run": {k: run[k] for k in ("clients", "throughput_rps", "p50_ms", "p99_ms", "errors")},
            "svg": svg.name if svg.exists() else None, "problems": problems,
            "rate": recordings[0].rate if recordings else None, **summary}


async def _profile_worker(
    conn: asyncpg.Connection, processes: Processes, meter: CpuMeter, path: str, secret: str,
    body: Callable[[int], bytes], options: Options,
) -> tuple[Running, dict[str, Any]]:
    """A fresh backlog (a 202 run with the workers off, not counted) drained under py-spy from the moment leads
    is ready: where the worker's time goes. Returns leads running as deployed again, and the profile."""
    leads = await _restart(processes, meter, WORKERS_OFF)
    await _measure(SignedTarget(HOST, leads.port, path, secret=secret), body, options, meter, expect_status=202,
                   duration=max(1.0, options.profile_seconds / 2))
    backlog = await _pending(conn)
    leads = await _restart(processes, meter)
    raw = LOG_DIR / "webhook-worker-profile.txt"
    recording = profiling.record(leads.pid, raw=raw, seconds=options.profile_seconds, log=LOG_DIR / "py-spy.log")
    problems = await asyncio.to_thread(recording.wait)
    summary = (profiling.summarize(raw, seconds=options.profile_seconds, rate=recording.rate,
                                   rules=WEBHOOK_ACTIVITIES) if raw.exists() else {})
    left = await _pending(conn)
    return leads, {"problems": problems, "rate": recording.rate, "seconds": options.profile_seconds,
                   "backlog": backlog, "processed_while_sampled": backlog - left,
                   **{k: v for k, v in summary.items() if k in ("samples", "busy_share", "by_activity", "top_self")}}


async def run(postgres: BenchPostgres, options: Options) -> dict[str, Any]:
    admin_url = await postgres.fresh_database()
    conn = await asyncpg.connect(admin_url)
    sampler_conn = await asyncpg.connect(admin_url)
    runs_started = itertools.count(1)

    def bodies() -> Callable[[int], bytes]:
        offset = next(runs_started) * RUN_STRIDE
        return lambda number: form_body(offset + number)

    try:
        await conn.execute(SCHEMA_SQL)
        async with Processes(admin_url) as processes:
            reporting = await processes.start_service("reporting")
            leads = await processes.start_service("leads", env=WORKERS_OFF)
            baseline = await processes.start(baseline_spec(admin_url, processes.baseline_port))
            meter = CpuMeter({"leads": leads.pid, "reporting": reporting.pid, "baseline": baseline.pid},
                             postmaster_pid=postgres.postmaster_pid())
            token = admin_token(uuid.uuid4())
            await api(leads.port, "PATCH", "/v1/lead-settings", token, {"default_region": "RU"})
            source = await api(leads.port, "POST", "/v1/sources", token,
                               {"name": "Landing page form", "channel": "web_form"})
            path = f"/v1/inbound/{source['id']}"
            signed = SignedTarget(HOST, leads.port, path, secret=source["secret"])
            baseline_target = Target(HOST, baseline.port, "/leads")

            # 1. The 202 path alone.
            voronka_runs, baseline_runs = [], []
            for _ in range(options.repeat):
                voronka_runs.append(await _measure(signed, bodies(), options, meter, expect_status=202))
                baseline_runs.append(await _measure(baseline_target, lead_body, options, meter, expect_status=201))
            voronka, base = median_run("voronka", voronka_runs), median_run("baseline", baseline_runs)
            with_token = await _measure(Target(HOST, leads.port, f"{path}?token={source['token']}"), bodies(),
                                        options, meter, expect_status=202)

            # 2. The worker on the backlog the 202 runs left.
            leads = await _restart(processes, meter)
            drain = await _drain(conn, sampler_conn, meter, options.webhook_drain_seconds)
            drain["outcomes"] = await _outcomes(conn)
            if drain["left"]:
                leads, drain["dropped_after_limit"] = await _clear_backlog(conn, processes, meter)
            await wait_delivered(conn)

            # 3. As deployed: the worker takes requests in while more arrive.
            signed = SignedTarget(HOST, leads.port, path, secret=source["secret"])
            deployed = await _measure(signed, bodies(), options, meter, expect_status=202)
            load_ended = time.monotonic()
            deployed["backlog_at_end"] = await _pending(conn)
            deadline = load_ended + options.webhook_drain_seconds
            while await _pending(conn) and time.monotonic() < deadline:
                await asyncio.sleep(POLL_SECONDS)
            deployed["backlog_cleared_after_s"] = (round(time.monotonic() - load_ended, 2)
                                                   if not await _pending(conn) else None)
            # After the backlog cleared: a worker batch that started in the window commits after it.
            deployed.update(await _window_rates(conn, deployed["window_wall"]))
            if await _pending(conn):
                leads, deployed["dropped_after_limit"] = await _clear_backlog(conn, processes, meter)
                signed = SignedTarget(HOST, leads.port, path, secret=source["secret"])
            await wait_delivered(conn)

            # 4. Where the CPU goes, as deployed; then where the worker's time goes when it drains alone.
            profile = worker_profile = None
            if options.profile and profiling.py_spy() is not None:
                profile = await _profile(leads, signed, bodies(), options, meter)
                await _clear_backlog(conn, processes, meter)
                leads, worker_profile = await _profile_worker(conn, processes, meter, path, source["secret"], bodies(),
                                                              options)
    finally:
        await conn.close()
        await sampler_conn.close()

    return {
        "benchmark": "webhook_ingest",
        "settings": {"clients": options.webhook_clients, "warmup_s": options.warmup, "duration_s": options.duration,
                     "repeat": options.repeat, "drain_limit_s": options.webhook_drain_seconds,
                     "body_bytes": len(form_body(0))},
        "runs": [voronka, base],
        "ratios": {"throughput": ratio(voronka["throughput_rps"], base["throughput_rps"]),
                   "p50": ratio(voronka["p50_ms"], base["p50_ms"]), "p99": ratio(voronka["p99_ms"], base["p99_ms"])},
        "token_run": with_token,
        "drain": drain,
        "deployed": deployed,
        "profile": profile,
        "worker_profile": worker_profile,
        "targets": {
            "throughput_rps": {"target": TARGET_RPS, "reached": voronka["throughput_rps"]},
            "p99_ms": {"target": TARGET_P99_MS, "reached": voronka["p99_ms"]},
        },
    }
