"""Benchmark 2: how long a lead takes from committed in leads to visible in reporting's read model.

Leads are posted open loop at a steady rate (200/s by default), after a warm-up in a workspace of its own.
Two measurements of the same events:
- PostgreSQL clock (the headline): reporting.inbox.handled_at - leads.outbox.occurred_at per event. Both come
  from this machine's clock: occurred_at is stamped by the leads process just before its transaction commits,
  handled_at is now() (transaction start) of the reporting transaction that applies the event.
- client-observed: from the moment the POST's answer arrived (after the commit) to the start of the first
  poll of reporting.lead_facts that saw the lead; polls run every 10 ms, so this is an upper bound that is at
  most one poll interval high.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

import asyncpg
import orjson

from bench import profiling
from bench.cpu import CpuMeter
from bench.leads_write import lead_body
from bench.load import Sent, Target, latency_summary, open_loop
from bench.options import Options
from bench.probes import wait_drained
from bench.stack import HOST, LOG_DIR, BenchPostgres, Processes
from services.common.auth import Role, issue_token
from services.common.settings import get_settings

TARGET_P99_MS = 100.0
TAIL_TIMEOUT_SECONDS = 30.0

PG_CLOCK_LATENCY = """
SELECT extract(epoch FROM i.handled_at - o.occurred_at)::float8 AS seconds
FROM leads.outbox o
JOIN reporting.inbox i ON i.workspace_id = o.workspace_id AND i.event_id = o.id
WHERE o.workspace_id = $1
"""


def _target(port: int, workspace: uuid.UUID) -> Target:
    token = issue_token(get_settings(), workspace_id=workspace, user_id=uuid.uuid4(), role=Role.admin)
    return Target(HOST, port, "/v1/leads", {"Authorization": f"Bearer {token}"})


class ReadModelWatcher:
    """Polls reporting.lead_facts for the leads posted so far and notes when each first shows up."""

    def __init__(self, conn: asyncpg.Connection, workspace: uuid.UUID, interval: float) -> None:
        self.conn = conn
        self.workspace = workspace
        self.interval = interval
        self.returned: dict[uuid.UUID, float] = {}  # lead id -> wall time its POST was answered
        self.seen: dict[uuid.UUID, float] = {}  # lead id -> wall time the first poll that saw it started
        self._pending: set[uuid.UUID] = set()

    def on_answer(self, sent: Sent) -> None:
        if sent.status != 201:
            return
        lead_id = uuid.UUID(orjson.loads(sent.body)["id"])
        self.returned[lead_id] = sent.done_wall
        self._pending.add(lead_id)

    async def watch(self, stop: asyncio.Event) -> None:
        while not (stop.is_set() and not self._pending):
            if self._pending:
                asked = time.time()
                rows = await self.conn.fetch(
                    "SELECT lead_id FROM reporting.lead_facts WHERE workspace_id = $1 AND lead_id = ANY($2::uuid[])",
                    self.workspace, list(self._pending),
                )
                for row in rows:
                    self.seen[row["lead_id"]] = asked
                    self._pending.discard(row["lead_id"])
            await asyncio.sleep(self.interval)

    def latencies(self) -> list[float]:
        return [self.seen[i] - done for i, done in self.returned.items() if i in self.seen]


async def _profile(pid: int, port: int, options: Options) -> dict[str, Any]:
    """Where the leads process's CPU goes at this steady rate: a further run, not counted, under py-spy."""
    raw = LOG_DIR / "leads-profile-steady.txt"
    recording = profiling.record(pid, raw=raw, seconds=options.profile_seconds, log=LOG_DIR / "py-spy.log")
    await open_loop(_target(port, uuid.uuid4()), lead_body, rate=options.latency_rate,
                    duration=options.profile_seconds + 1.0)
    problems = await asyncio.to_thread(recording.wait)
    summary = profiling.summarize(raw, seconds=options.profile_seconds, rate=recording.rate) if raw.exists() else {}
    return {"problems": problems, "rate": recording.rate,
            **{k: v for k, v in summary.items() if k in ("samples", "busy_share", "by_activity")}}


async def run(postgres: BenchPostgres, options: Options) -> dict[str, Any]:
    admin_url = await postgres.fresh_database()
    conn = await asyncpg.connect(admin_url)
    poll_conn = await asyncpg.connect(admin_url)
    try:
        async with Processes(admin_url) as processes:
            reporting = await processes.start_service("reporting")
            leads = await processes.start_service("leads")
            meter = CpuMeter({"leads": leads.pid, "reporting": reporting.pid},
                             postmaster_pid=postgres.postmaster_pid())
            await open_loop(_target(leads.port, uuid.uuid4()), lead_body, rate=options.latency_rate,
                            duration=options.latency_warmup)
            await wait_drained(conn)

            workspace = uuid.uuid4()
            watcher = ReadModelWatcher(poll_conn, workspace, options.poll_interval)
            stop = asyncio.Event()
            watching = asyncio.create_task(watcher.watch(stop))
            start = meter.snapshot()
            sent = await open_loop(_target(leads.port, workspace), lead_body, rate=options.latency_rate,
                                   duration=options.latency_duration, on_answer=watcher.on_answer)
            cpu = CpuMeter.cores(start, meter.snapshot())
            stop.set()
            with contextlib.suppress(TimeoutError):  # what never showed up is reported as missing
                await asyncio.wait_for(watching, TAIL_TIMEOUT_SECONDS)
            await wait_drained(conn, timeout=TAIL_TIMEOUT_SECONDS)
            pg_clock = [row["seconds"] for row in await conn.fetch(PG_CLOCK_LATENCY, workspace)]
            profile = await _profile(leads.pid, leads.port, options) if options.profile and profiling.py_spy() else None
    finally:
        await conn.close()
        await poll_conn.close()

    ok = [s for s in sent if s.status == 201]
    errors = [s for s in sent if s.status != 201]
    return {
        "benchmark": "event_latency",
        "settings": {"rate_per_s": options.latency_rate, "duration_s": options.latency_duration,
                     "warmup_s": options.latency_warmup, "poll_interval_ms": options.poll_interval * 1000},
        "leads_posted": len(sent),
        "achieved_rate_per_s": len(sent) / options.latency_duration,
        "post_errors": len(errors),
        "post_error_samples": [s.body[:200].decode(errors="replace") for s in errors[:5]],
        "post_latency": latency_summary([s.latency for s in ok]),
        "pg_clock": {"events": len(pg_clock), **latency_summary(pg_clock)},
        "client_observed": {"events": len(watcher.seen), "missing": len(watcher.returned) - len(watcher.seen),
                            **latency_summary(watcher.latencies())},
        "cpu_cores": cpu,
        "profile": profile,
        "targets": {"p99_ms": {"target": TARGET_P99_MS,
                               "reached": latency_summary(pg_clock)["p99_ms"] if pg_clock else None}},
    }
