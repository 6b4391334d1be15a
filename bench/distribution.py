"""Benchmark 9: what scoring and distribution add to taking leads in — POST /v1/leads, open loop, at 1,000 leads/s
(the issue's rate) and at 500 leads/s.

Two ways of running the same leads service, one after the other, twice (A B A B, so a slow spell of the machine
hits both); the run of each with the higher p99 is reported:
- **bare**: the ScoringWorker and the AssignmentWorker off (VORONKA_WORKERS_DISABLED), in a workspace without
  assignment rules: capture as it would be without scoring and distribution (capture still queues each lead for
  scoring, one small insert, since that is part of its transaction);
- **full**: every worker on, in a workspace whose new leads are dealt round robin to a team of four hunters: each
  lead is scored (stored score, lead.scored) and given an owner (lead.assigned) after its commit.
The bench checks the round robin came out exactly even and every lead got its stored score, and measures how long
a lead waits for its owner on the PostgreSQL clock (its `created_at` to its `lead_assignments.assigned_at`).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx

from bench.cpu import CpuMeter
from bench.leads_write import lead_body
from bench.load import Target, latency_summary, open_loop
from bench.options import Options
from bench.probes import wait_drained
from bench.stack import HOST, BenchPostgres, Processes
from services.common.auth import Role, issue_token
from services.common.settings import get_settings

RATES = (1000.0, 500.0)  # leads/s: the issue's "at 1,000 leads/s", and half of it
TARGET_RATE = 1000.0
TARGET_ADDED_P99_MS = 5.0
HUNTERS = 4
SETTLE_TIMEOUT_SECONDS = 120.0
BARE_ENV = {"VORONKA_WORKERS_DISABLED": '["ScoringWorker", "AssignmentWorker", "RescoreWorker"]'}

ASSIGNMENT_LAG = """
SELECT extract(epoch FROM a.assigned_at - l.created_at)::float8 AS seconds
FROM leads.lead_assignments a JOIN leads.leads l ON l.workspace_id = a.workspace_id AND l.id = a.lead_id
WHERE a.workspace_id = $1 AND a.member_id IS NOT NULL
"""


def _token(workspace: uuid.UUID) -> str:
    return issue_token(get_settings(), workspace_id=workspace, user_id=uuid.uuid4(), role=Role.admin)


async def _with_round_robin(port: int, workspace: uuid.UUID) -> list[str]:
    """A team of HUNTERS hunters and a round-robin rule for the workspace's new leads; the hunters' ids."""
    headers = {"Authorization": f"Bearer {_token(workspace)}"}
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", headers=headers, timeout=10) as api:
        team = (await api.post("/v1/teams", json={"name": "Inbound"})).raise_for_status().json()
        hunters = []
        for n in range(HUNTERS):
            member = {"id": str(uuid.uuid4()), "name": f"Hunter {n + 1}", "role": "hunter", "team_id": team["id"],
                      # Every hour of every day: the bench must not depend on when it runs.
                      "working_hours": {day: [["00:00", "24:00"]]
                                        for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}}
            hunters.append((await api.post("/v1/members", json=member)).raise_for_status().json()["id"])
        rule = {"name": "Inbound round robin", "stage": "new", "method": "round_robin", "team_id": team["id"]}
        (await api.post("/v1/assignment-rules", json=rule)).raise_for_status()
    return hunters


async def _measure(port: int, workspace: uuid.UUID, rate: float, options: Options, meter: CpuMeter) -> dict[str, Any]:
    target = Target(HOST, port, "/v1/leads", {"Authorization": f"Bearer {_token(workspace)}"})
    start = meter.snapshot()
    sent = await open_loop(target, lead_body, rate=rate, duration=options.latency_duration)
    cpu = CpuMeter.cores(start, meter.snapshot())
    ok = [s.latency for s in sent if s.status == 201]
    return {"posted": len(sent), "errors": len(sent) - len(ok), **latency_summary(ok), "cpu_cores": cpu}


async def _settled(conn: asyncpg.Connection, workspace: uuid.UUID, expected: int) -> tuple[dict[str, int], int]:
    """Waits until the workers have given every lead of the workspace an owner and a stored score; the leads per
    owner, and how many are scored."""
    deadline = asyncio.get_running_loop().time() + SETTLE_TIMEOUT_SECONDS
    while True:
        rows = await conn.fetch(
            "SELECT owner_id, count(*) AS n FROM leads.leads WHERE workspace_id = $1 AND owner_id IS NOT NULL "
            "GROUP BY owner_id", workspace,
        )
        counts = {str(r["owner_id"]): r["n"] for r in rows}
        scored = await conn.fetchval("SELECT count(*) FROM leads.lead_scores WHERE workspace_id = $1", workspace)
        done = sum(counts.values()) >= expected and scored >= expected
        if done or asyncio.get_running_loop().time() > deadline:
            return counts, scored
        await asyncio.sleep(0.2)


async def _quiet(conn: asyncpg.Connection) -> None:
    """Nothing left for any worker from earlier runs: events delivered, no lead waiting to be scored or assigned."""
    await wait_drained(conn)
    deadline = asyncio.get_running_loop().time() + SETTLE_TIMEOUT_SECONDS
    while await conn.fetchval(
        "SELECT (SELECT count(*) FROM leads.score_queue) "
        "+ (SELECT count(*) FROM leads.leads WHERE assignment_state = 'pending')"
    ):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("the workers did not catch up between runs")
        await asyncio.sleep(0.2)


async def _one_run(
    processes: Processes, conn: asyncpg.Connection, postgres: BenchPostgres, reporting_pid: int, *, full: bool,
    rate: float, options: Options,
) -> dict[str, Any]:
    leads = await processes.start_service("leads", env={} if full else BARE_ENV)
    try:
        meter = CpuMeter({"leads": leads.pid, "reporting": reporting_pid}, postmaster_pid=postgres.postmaster_pid())
        # Warm-up in a workspace of its own, then let the workers catch up (a bare process leaves its leads queued
        # for the next full one, which scores them before measuring).
        warm = Target(HOST, leads.port, "/v1/leads", {"Authorization": f"Bearer {_token(uuid.uuid4())}"})
        await open_loop(warm, lead_body, rate=rate, duration=options.latency_warmup)
        if full:
            await _quiet(conn)
        else:
            await wait_drained(conn)
        workspace = uuid.uuid4()
        hunters = await _with_round_robin(leads.port, workspace) if full else []
        result = await _measure(leads.port, workspace, rate, options, meter)
        if full:
            taken = result["posted"] - result["errors"]
            counts, scored = await _settled(conn, workspace, taken)
            result["per_hunter"] = sorted(counts.get(h, 0) for h in hunters)
            result["unassigned"] = taken - sum(counts.values())
            result["unscored"] = taken - scored
            result["lags"] = [r["seconds"] for r in await conn.fetch(ASSIGNMENT_LAG, workspace)]
        await wait_drained(conn)
        return result
    finally:
        processes.stop("leads")


async def run(postgres: BenchPostgres, options: Options) -> dict[str, Any]:
    admin_url = await postgres.fresh_database()
    conn = await asyncpg.connect(admin_url)
    rates: dict[str, Any] = {}
    try:
        async with Processes(admin_url) as processes:
            reporting = await processes.start_service("reporting")
            for rate in RATES:
                bare_runs, full_runs = [], []
                for _ in range(2):
                    bare_runs.append(await _one_run(processes, conn, postgres, reporting.pid, full=False, rate=rate,
                                                    options=options))
                    full_runs.append(await _one_run(processes, conn, postgres, reporting.pid, full=True, rate=rate,
                                                    options=options))
                rates[f"{rate:g}"] = _summary(rate, bare_runs, full_runs)
    finally:
        await conn.close()
    at_target = rates[f"{TARGET_RATE:g}"]
    return {
        "benchmark": "distribution",
        "settings": {"rates_per_s": list(RATES), "duration_s": options.latency_duration, "hunters": HUNTERS,
                     "method": "round_robin", "runs_each": 2},
        "rates": rates,
        "round_robin_even": all(r["round_robin_even"] for r in rates.values()),
        "left_unassigned": sum(r["left_unassigned"] for r in rates.values()),
        "left_unscored": sum(r["left_unscored"] for r in rates.values()),
        "targets": {"added_p99_ms": {"target": TARGET_ADDED_P99_MS, "reached": at_target["added_p99_ms"],
                                     "rate_per_s": TARGET_RATE}},
    }


def _summary(rate: float, bare_runs: list[dict[str, Any]], full_runs: list[dict[str, Any]]) -> dict[str, Any]:
    bare = max(bare_runs, key=lambda r: r["p99_ms"])
    full = max(full_runs, key=lambda r: r["p99_ms"])
    lags = [lag for r in full_runs for lag in r.pop("lags")]
    return {
        "rate_per_s": rate,
        "bare": bare,
        "full": full,
        "all_runs": {"bare": bare_runs, "full": full_runs},
        "added_p99_ms": full["p99_ms"] - bare["p99_ms"],
        "added_p50_ms": full["p50_ms"] - bare["p50_ms"],
        "assignment_lag": latency_summary(lags),
        "round_robin_even": all(r["per_hunter"][-1] - r["per_hunter"][0] <= 1 for r in full_runs),
        "left_unassigned": sum(r["unassigned"] for r in full_runs),
        "left_unscored": sum(r["unscored"] for r in full_runs),
    }


def section(result: dict[str, Any]) -> list[str]:
    """This benchmark's part of summary.md."""
    s = result["settings"]
    target = result["targets"]["added_p99_ms"]
    met = target["reached"] < TARGET_ADDED_P99_MS and result["round_robin_even"] and not result["left_unassigned"]

    def row(name: str, r: dict[str, Any]) -> str:
        cpu = r["cpu_cores"]
        return (f"| {name} | {r['posted']:,} | {r['errors']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                f"{r['max_ms']:.1f} | {cpu.get('leads', 0):.2f} | {cpu.get('postgres', 0):.2f} |")

    lines = [
        "## Scoring and distribution's cost on capture",
        "",
        f"`POST /v1/leads`, open loop, {s['duration_s']:g} s per run, at "
        f"{' and '.join(f'{r:,.0f}' for r in s['rates_per_s'])} leads/s. *Bare*: the leads service with its "
        "ScoringWorker and AssignmentWorker off, a workspace without rules. *Full*: every worker on, new leads "
        f"dealt round robin to {s['hunters']} hunters, each lead scored "
        "(stored score, `lead.scored`) and assigned (`lead.assigned`) after its commit. Two runs each, alternating; "
        "the one with the higher p99 is shown.",
        "",
        "| leads/s | run | leads | errors | p50 ms | p99 ms | max ms | leads cores | postgres cores |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, r in result["rates"].items():
        rate = f"{float(key):,.0f}"
        lines += [f"| {rate} {row('bare', r['bare'])[1:]}", f"| {rate} {row('full', r['full'])[1:]}"]
    lines.append("")
    for key, r in result["rates"].items():
        lag = r["assignment_lag"]
        lines.append(
            f"- at {float(key):,.0f}/s: p99 {r['added_p99_ms']:+.1f} ms, p50 {r['added_p50_ms']:+.1f} ms; lead "
            f"created → owner assigned p50 {lag['p50_ms']:.1f} ms, p99 {lag['p99_ms']:.1f} ms; leads per hunter "
            + "; ".join(str(run["per_hunter"]) for run in r["all_runs"]["full"])
            + f" ({'exactly even' if r['round_robin_even'] else '**uneven**'}); {r['left_unassigned']} without an "
            f"owner, {r['left_unscored']} without a stored score."
        )
    lines += [
        "",
        f"p99 added at {target['rate_per_s']:,.0f} leads/s: {target['reached']:+.1f} ms (target < "
        f"{TARGET_ADDED_P99_MS:g} ms) — {'**met**' if met else '**not met**'}.",
        "",
    ]
    return lines
