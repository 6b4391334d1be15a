"""Benchmark 3: the outbox on its own: how fast a backlog of N lead.created events reaches reporting.

With reporting up and leads not running, N events are written straight into leads.outbox, shaped exactly as
`services.common.outbox.publish` writes them (CloudEvents of voronka.lead.created.v1 carrying validated
LeadCreatedV1 payloads, spread over ten workspaces). Then leads starts, its dispatcher sequences and delivers
the backlog, and the bench polls both ends every 50 ms: positioned in the outbox, applied in reporting.inbox.
Then a second backlog, half the size, drains with py-spy on reporting (not counted in the numbers).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from bench import profiling
from bench.cpu import CpuMeter
from bench.options import Options
from bench.stack import LOG_DIR, BenchPostgres, Processes, Running
from services.common.ids import new_id
from services.contracts import LeadCreatedV1

TARGET_EVENTS_PER_S = 2000.0
WORKSPACES = 10
INSERT_CHUNK = 5000
POLL_SECONDS = 0.05
DRAIN_TIMEOUT_SECONDS = 300.0

INSERT_EVENTS = """
INSERT INTO leads.outbox (workspace_id, id, type, subject, occurred_at, event)
SELECT w, i, t, s, o, e::jsonb
FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[], $6::text[]) AS u(w, i, t, s, o, e)
"""
PROGRESS = """
SELECT (SELECT count(*) FROM leads.outbox WHERE position IS NOT NULL) AS sequenced,
       (SELECT count(*) FROM reporting.inbox) AS applied
"""


def lead_created_event(number: int, workspace_id: uuid.UUID, user_id: uuid.UUID) -> tuple[Any, ...]:
    """One outbox row as publish() writes it: (workspace_id, id, type, subject, occurred_at, event as text)."""
    now = datetime.now(UTC)
    lead_id, event_id = new_id(), new_id()
    payload = LeadCreatedV1(
        lead_id=lead_id, workspace_id=workspace_id, name=f"Lead {number}", email=f"lead{number}@example.com",
        source="web_form", created_by=user_id, created_at=now,
    )
    event = {
        "specversion": "1.0",
        "id": str(event_id),
        "source": "/voronka/leads",
        "type": LeadCreatedV1.type(),
        "subject": str(lead_id),
        "time": now.isoformat(),
        "datacontenttype": "application/json",
        "workspaceid": str(workspace_id),
        "traceparent": None,
        "data": payload.model_dump(mode="json"),
    }
    return workspace_id, event_id, event["type"], event["subject"], now, orjson.dumps(event).decode()


async def insert_backlog(conn: asyncpg.Connection, count: int) -> float:
    """Writes `count` events into leads.outbox; the seconds it took."""
    started = time.monotonic()
    workspaces = [uuid.uuid4() for _ in range(WORKSPACES)]
    user_id = uuid.uuid4()
    for first in range(0, count, INSERT_CHUNK):
        rows = [lead_created_event(n, workspaces[n % WORKSPACES], user_id)
                for n in range(first, min(count, first + INSERT_CHUNK))]
        await conn.execute(INSERT_EVENTS, *(list(column) for column in zip(*rows, strict=True)))
    return time.monotonic() - started


@dataclass
class Drain:
    """How one backlog went through: progress samples and the CPU used from leads' readiness to the end."""

    samples: list[tuple[float, int, int]]  # (seconds since leads was started, sequenced, applied)
    ready_at: float
    cpu: dict[str, float]


async def drain(
    conn: asyncpg.Connection, processes: Processes, postgres: BenchPostgres, reporting: Running, applied: int,
    on_ready: Callable[[], None] | None = None,
) -> Drain:
    """Starts leads and polls both ends until reporting's inbox holds `applied` events; `on_ready` is called
    when leads answers /readyz (its dispatcher has started by then).
    """
    samples: list[tuple[float, int, int]] = []
    started = time.monotonic()
    starting = asyncio.create_task(processes.start_service("leads"))
    meter: CpuMeter | None = None
    cpu_start = None
    ready_at = 0.0
    while True:
        row = await conn.fetchrow(PROGRESS)
        assert row is not None
        now = time.monotonic() - started
        samples.append((now, row["sequenced"], row["applied"]))
        if meter is None and starting.done():
            leads = starting.result()
            ready_at = now
            meter = CpuMeter({"leads": leads.pid, "reporting": reporting.pid}, postmaster_pid=postgres.postmaster_pid())
            cpu_start = meter.snapshot()
            if on_ready is not None:
                on_ready()
        if row["applied"] >= applied and meter is not None and cpu_start is not None:
            return Drain(samples, ready_at, CpuMeter.cores(cpu_start, meter.snapshot()))
        if now > DRAIN_TIMEOUT_SECONDS:
            starting.cancel()
            raise TimeoutError(f"only {row['applied']} of {applied} events applied after {now:.0f}s")
        await asyncio.sleep(POLL_SECONDS)


async def _profile_reporting(
    conn: asyncpg.Connection, processes: Processes, postgres: BenchPostgres, reporting: Running, options: Options,
    applied_before: int,
) -> dict[str, Any]:
    """A second backlog drained under py-spy: where reporting's CPU goes while it applies events."""
    processes.stop("leads")
    count = options.outbox_events
    await insert_backlog(conn, count)
    raw = LOG_DIR / "reporting-profile.txt"
    recordings: list[profiling.Recording] = []

    def start_sampling() -> None:
        recordings.append(profiling.record(reporting.pid, raw=raw, seconds=DRAIN_TIMEOUT_SECONDS, rate=100,
                                           log=LOG_DIR / "py-spy.log"))

    try:
        profiled = await drain(conn, processes, postgres, reporting, applied_before + count, on_ready=start_sampling)
    finally:
        problems = [p for r in recordings for p in await asyncio.to_thread(r.stop)]
    if not recordings or not raw.exists():
        return {"problems": problems or ["py-spy did not start"]}
    recording = recordings[0]
    summary = profiling.summarize(raw, seconds=recording.seconds, rate=recording.rate,
                                  rules=profiling.REPORTING_ACTIVITIES)
    return {"events": count, "seconds": round(recording.seconds, 3), "problems": problems,
            "rate": recording.rate, "cpu_cores": profiled.cpu,
            **{k: v for k, v in summary.items() if k in ("samples", "busy_share", "by_activity", "top_self")}}


async def run(postgres: BenchPostgres, options: Options) -> dict[str, Any]:
    count = options.outbox_events
    admin_url = await postgres.fresh_database()
    conn = await asyncpg.connect(admin_url)
    try:
        async with Processes(admin_url) as processes:
            reporting = await processes.start_service("reporting")
            insert_seconds = await insert_backlog(conn, count)
            await conn.execute("ANALYZE leads.outbox")
            measured = await drain(conn, processes, postgres, reporting, count)
            span = await conn.fetchrow(
                "SELECT extract(epoch FROM max(handled_at) - min(handled_at))::float8 AS seconds, "
                "count(DISTINCT handled_at) AS batches FROM reporting.inbox"
            )
            assert span is not None
            facts = await conn.fetchval("SELECT count(*) FROM reporting.lead_facts")
            profile = (await _profile_reporting(conn, processes, postgres, reporting, options, count)
                       if options.profile and profiling.py_spy() else None)
    finally:
        await conn.close()
    return {**_result(count, insert_seconds, measured, span, facts), "reporting_profile": profile}


def _result(count: int, insert_seconds: float, measured: Drain, span: asyncpg.Record, facts: int) -> dict[str, Any]:
    samples = measured.samples
    first_applied = next(s for s in samples if s[2] > 0)
    done = next(s for s in samples if s[2] >= count)
    sequenced = next((s for s in samples if s[1] >= count), None)
    drain_seconds = done[0] - first_applied[0]
    # From the first poll that saw applied events to the one that saw all: the dispatcher's steady rate.
    drain_rate = (count - first_applied[2]) / drain_seconds if drain_seconds > 0 else float("nan")
    batches = int(span["batches"])
    # handled_at is each batch's transaction start: the span covers all batches but the last one.
    pg_rate = count * (batches - 1) / batches / span["seconds"] if batches > 1 and span["seconds"] else float("nan")
    return {
        "benchmark": "outbox_throughput",
        "settings": {"events": count, "workspaces": WORKSPACES, "poll_ms": POLL_SECONDS * 1000},
        "insert_seconds": round(insert_seconds, 3),
        "leads_ready_after_s": measured.ready_at,
        "first_applied_after_s": first_applied[0],
        "all_sequenced_after_s": sequenced[0] if sequenced else None,
        "all_applied_after_s": done[0],
        "events_per_s": drain_rate,
        "events_per_s_pg_clock": pg_rate,
        "events_per_s_including_start": count / done[0],
        "delivery_batches": batches,
        "lead_facts": facts,
        "cpu_cores": measured.cpu,
        # Enough of the curve to plot, not every 50 ms sample.
        "progress": [{"t": round(t, 3), "sequenced": s, "applied": a}
                     for t, s, a in samples[:: max(1, len(samples) // 60)]],
        "targets": {"events_per_s": {"target": TARGET_EVENTS_PER_S, "reached": drain_rate}},
    }
