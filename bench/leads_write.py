"""Benchmark 1: POST /v1/leads at 1, 16 and 64 closed-loop clients, each beside the raw-PostgreSQL baseline.

Leads runs as in production: its dispatcher on and reporting applying the events, so the write path pays for
event delivery too (the CPU columns show who used what). Then, at 16 clients: a run under py-spy, and a run
with the dispatcher off to separate its cost from the request path's.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg

from bench import profiling
from bench.baseline_app import SCHEMA_SQL
from bench.cpu import CpuMeter, Snapshot
from bench.load import Target, closed_loop
from bench.options import Options
from bench.probes import wait_drained
from bench.stack import HOST, LOG_DIR, BenchPostgres, Processes, Running, baseline_spec
from services.common.auth import Role, issue_token
from services.common.settings import get_settings

TARGET_RPS_AT_16 = 1000.0
TARGET_P99_MS_AT_16 = 50.0
PROFILE_CLIENTS = 16
PAUSE_BETWEEN_RUNS_SECONDS = 1.0


def lead_body(number: int) -> bytes:
    return b'{"name":"Lead %d","email":"lead%d@example.com","source":"web_form"}' % (number, number)


async def _measure(
    target: Target, clients: int, options: Options, meter: CpuMeter, *, duration: float | None = None,
    on_start: Callable[[], None] | None = None,
) -> dict[str, Any]:
    snapshots: dict[str, Snapshot] = {}

    def on_window(edge: str) -> None:
        snapshots[edge] = meter.snapshot()
        if edge == "start" and on_start is not None:
            on_start()

    result = await closed_loop(
        target, lead_body, clients=clients, warmup=options.warmup, duration=duration or options.duration,
        on_window=on_window,
    )
    return {**result.as_json(), "cpu_cores": CpuMeter.cores(snapshots["start"], snapshots["end"])}


async def _settle(conn: asyncpg.Connection) -> None:
    """Lets the previous run's events reach reporting, so that their delivery does not overlap the next run."""
    await wait_drained(conn)
    await asyncio.sleep(PAUSE_BETWEEN_RUNS_SECONDS)


def _median(system: str, repeats: list[dict[str, Any]]) -> dict[str, Any]:
    """The repetition with the median throughput (the lower middle of an even count), and all of them in short."""
    ordered = sorted(repeats, key=lambda r: r["throughput_rps"])
    chosen = ordered[(len(ordered) - 1) // 2]
    summary = [{k: r[k] for k in ("throughput_rps", "p50_ms", "p99_ms", "errors")} for r in repeats]
    return {"system": system, **chosen, "repeats": summary}


def _leads_target(leads: Running) -> Target:
    token = issue_token(get_settings(), workspace_id=uuid.uuid4(), user_id=uuid.uuid4(), role=Role.admin)
    return Target(HOST, leads.port, "/v1/leads", {"Authorization": f"Bearer {token}"})


def _ratios(voronka: dict[str, Any], baseline: dict[str, Any]) -> dict[str, float]:
    def ratio(key: str) -> float:
        return round(voronka[key] / baseline[key], 3) if baseline[key] else float("nan")

    return {"throughput": ratio("throughput_rps"), "p50": ratio("p50_ms"), "p99": ratio("p99_ms")}


async def _profile(leads: Running, target: Target, options: Options, meter: CpuMeter) -> dict[str, Any]:
    results = options.results_dir
    svg, raw = results / "leads-profile.svg", LOG_DIR / "leads-profile.txt"
    recordings: list[profiling.Recording] = []

    def start_sampling() -> None:
        recordings.append(profiling.record(
            leads.pid, raw=raw, svg=svg, seconds=options.profile_seconds, log=LOG_DIR / "py-spy.log"
        ))

    # The window outlasts the sampling by a little: py-spy takes a moment to attach.
    run = await _measure(target, PROFILE_CLIENTS, options, meter, duration=options.profile_seconds + 1.0,
                         on_start=start_sampling)
    problems = await asyncio.to_thread(recordings[0].wait) if recordings else ["py-spy did not start"]
    summary = profiling.summarize(raw, seconds=options.profile_seconds, rate=recordings[0].rate) if raw.exists() else {}
    return {
        "run": run,
        "svg": svg.name if svg.exists() else None,
        "svg_bytes": svg.stat().st_size if svg.exists() else None,
        "problems": problems,
        "rate": recordings[0].rate if recordings else None,
        **summary,
    }


async def run(postgres: BenchPostgres, options: Options) -> dict[str, Any]:
    admin_url = await postgres.fresh_database()
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(SCHEMA_SQL)
        async with Processes(admin_url) as processes:
            reporting = await processes.start_service("reporting")
            leads = await processes.start_service("leads")
            baseline = await processes.start(baseline_spec(admin_url, processes.baseline_port))
            meter = CpuMeter(
                {"leads": leads.pid, "reporting": reporting.pid, "baseline": baseline.pid},
                postmaster_pid=postgres.postmaster_pid(),
            )
            baseline_target = Target(HOST, baseline.port, "/leads")

            runs: list[dict[str, Any]] = []
            ratios: list[dict[str, Any]] = []
            for clients in options.clients:
                voronka_runs, baseline_runs = [], []
                # Alternating, so that a slow spell of the machine hits both sides.
                for _ in range(options.repeat):
                    await _settle(conn)
                    # A workspace of its own per run: the numbered emails are new leads, not repeats to merge.
                    voronka_runs.append(await _measure(_leads_target(leads), clients, options, meter))
                    await _settle(conn)
                    baseline_runs.append(await _measure(baseline_target, clients, options, meter))
                voronka, base = _median("voronka", voronka_runs), _median("baseline", baseline_runs)
                runs += [voronka, base]
                ratios.append({"clients": clients, **_ratios(voronka, base)})

            profile: dict[str, Any] | None = None
            if options.profile and profiling.py_spy() is not None:
                await wait_drained(conn)
                profile = await _profile(leads, _leads_target(leads), options, meter)

            # The same 16 clients with the dispatcher off: what event delivery costs the write path.
            await wait_drained(conn)
            processes.stop("leads")
            leads = await processes.start_service("leads", env={"VORONKA_DISPATCHER_ENABLED": "false"})
            meter.pids["leads"] = leads.pid
            off_runs = []
            for _ in range(options.repeat):
                await asyncio.sleep(PAUSE_BETWEEN_RUNS_SECONDS)
                off_runs.append(await _measure(_leads_target(leads), PROFILE_CLIENTS, options, meter))
            no_dispatcher = _median("voronka, dispatcher off", off_runs)
    finally:
        await conn.close()

    at_16 = next((r for r in runs if r["system"] == "voronka" and r["clients"] == PROFILE_CLIENTS), None)
    return {
        "benchmark": "leads_write",
        "settings": {"warmup_s": options.warmup, "duration_s": options.duration, "clients": list(options.clients),
                     "repeat": options.repeat, "leads_pool_max": get_settings().db_pool_max},
        "runs": runs,
        "ratios": ratios,
        "dispatcher_off": no_dispatcher,
        "profile": profile,
        "targets": {
            "throughput_rps_at_16": {"target": TARGET_RPS_AT_16,
                                     "reached": at_16["throughput_rps"] if at_16 else None},
            "p99_ms_at_16": {"target": TARGET_P99_MS_AT_16, "reached": at_16["p99_ms"] if at_16 else None},
        },
    }
