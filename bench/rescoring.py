"""Benchmark 10: rescoring a million leads of one workspace after a change to its scoring model, through the real
leads process (`PATCH /v1/scoring-model` starts the job, its RescoreWorker works through the leads in chunks,
`GET /v1/scoring-model/rescores/{id}` follows the progress), beside the same rescoring as one SQL statement.

The leads are lead_search's million (written straight into the tables), each with one touch (a form, an API
call or an import, on the day it was created) and a tenth with a confirmed budget, so the rules have something to
read. Their stored scores start as the raw-PostgreSQL baseline writes them for the default model: one INSERT ...
SELECT ... ON CONFLICT DO UPDATE computing every score in SQL. Then:

1. the measured run: a model change adding two tag rules (vip +30, enterprise +15), which moves some grades;
2. the same change undone, with py-spy on the leads process for the first seconds (where its CPU goes);
3. a rescoring asked for by hand with nothing changed (what a nightly rescoring costs when little decays);
4. the baseline again, now for the changed model: the same million scores computed and written by PostgreSQL
   alone, the floor any implementation in a separate process pays.

Also EXPLAIN (ANALYZE) of the lead list filtered by grade and temperature on these rows.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import httpx

from bench import profiling
from bench.batch_ingest import admin_token
from bench.cpu import CpuMeter
from bench.lead_search import ADMIN, WORKSPACE, Query, _explain, load, repository_sql
from bench.options import Options
from bench.stack import HOST, LOG_DIR, BenchPostgres, Processes, Running
from services.leads import rescore_worker
from services.leads.repository import LeadFilter

TARGET_SECONDS = 120.0
JOB_TIMEOUT_SECONDS = 900.0
DEFAULT_RULES = [
    {"label": "Has a company", "attribute": "company", "op": "exists", "value": None, "points": 10},
    {"label": "Has a position", "attribute": "position", "op": "exists", "value": None, "points": 5},
    {"label": "Budget confirmed", "attribute": "budget_confirmed", "op": "exists", "value": None, "points": 15},
]
TAG_RULES = [
    {"label": "VIP", "attribute": "tags", "op": "contains", "value": "vip", "points": 30},
    {"label": "Enterprise", "attribute": "tags", "op": "contains", "value": "enterprise", "points": 15},
]

SEED_TOUCHES = """
INSERT INTO leads.lead_touches (workspace_id, id, lead_id, via, source, source_id, channel, touched_at)
SELECT workspace_id, gen_random_uuid(), id, (ARRAY['webhook', 'api', 'import'])[1 + abs(hashtext(id::text)) % 3],
       source, source_id, channel, created_at
FROM leads.leads WHERE workspace_id = $1
"""
SEED_QUALIFICATIONS = """
INSERT INTO leads.lead_qualifications (workspace_id, lead_id, budget_amount, budget_currency, budget_confirmed,
                                       updated_by)
SELECT workspace_id, id, 10000, 'EUR', true, $2 FROM leads.leads
WHERE workspace_id = $1 AND abs(hashtext(id::text || 'budget')) % 10 = 0
"""
# The rule scoring of services/leads/scoring.py in SQL, for the default rules plus the tag rules when $3: fit
# points, plus each touch's engagement points halved every 14 days, clamped to 0-100; grades 75/50/25 and
# temperature 70/40 (the default thresholds, which the bench's change keeps).
BASELINE = """
INSERT INTO leads.lead_scores AS s (workspace_id, lead_id, score, grade, temperature, model_version, computed_at)
SELECT l.workspace_id, l.id, sc.score,
       CASE WHEN sc.score >= 75 THEN 'A' WHEN sc.score >= 50 THEN 'B' WHEN sc.score >= 25 THEN 'C' ELSE 'D' END,
       CASE WHEN sc.score >= 70 THEN 'hot' WHEN sc.score >= 40 THEN 'warm' ELSE 'cold' END,
       $2, now()
FROM leads.leads l
LEFT JOIN leads.lead_qualifications q ON q.workspace_id = l.workspace_id AND q.lead_id = l.id
LEFT JOIN LATERAL (
    SELECT sum(CASE t.via WHEN 'webhook' THEN 20 WHEN 'import' THEN 5 ELSE 10 END
               * power(0.5, greatest(extract(epoch FROM now() - t.touched_at) / 86400, 0) / 14)) AS points
    FROM leads.lead_touches t WHERE t.workspace_id = l.workspace_id AND t.lead_id = l.id
) e ON true
CROSS JOIN LATERAL (
    SELECT round(least(greatest(
        CASE WHEN l.company IS NOT NULL THEN 10 ELSE 0 END + CASE WHEN l.position IS NOT NULL THEN 5 ELSE 0 END
        + CASE WHEN q.budget_confirmed THEN 15 ELSE 0 END
        + CASE WHEN $3 AND l.tags @> ARRAY['vip'] THEN 30 ELSE 0 END
        + CASE WHEN $3 AND l.tags @> ARRAY['enterprise'] THEN 15 ELSE 0 END
        + coalesce(e.points, 0), 0), 100))::int AS score
) sc
WHERE l.workspace_id = $1 AND l.status <> 'merged'
ON CONFLICT (workspace_id, lead_id) DO UPDATE SET
    score = excluded.score, grade = excluded.grade, temperature = excluded.temperature,
    model_version = excluded.model_version, computed_at = excluded.computed_at
"""


async def _seed(conn: asyncpg.Connection, count: int) -> dict[str, Any]:
    data = await load(conn, count)
    seconds = dict(data.seconds)
    mark = time.monotonic()
    await conn.execute(SEED_TOUCHES, WORKSPACE)
    await conn.execute(SEED_QUALIFICATIONS, WORKSPACE, ADMIN)
    await conn.execute("VACUUM (ANALYZE) leads.lead_touches")
    await conn.execute("VACUUM (ANALYZE) leads.lead_qualifications")
    seconds["touches_and_qualifications"] = round(time.monotonic() - mark, 2)
    mark = time.monotonic()
    await conn.execute(BASELINE, WORKSPACE, 0, False)
    seconds["baseline_first_scores"] = round(time.monotonic() - mark, 2)
    await conn.execute("VACUUM (ANALYZE) leads.lead_scores")
    scored = await conn.fetchval("SELECT count(*) FROM leads.lead_scores WHERE workspace_id = $1", WORKSPACE)
    grades = {r["grade"]: r["n"] for r in await conn.fetch(
        "SELECT grade, count(*) AS n FROM leads.lead_scores WHERE workspace_id = $1 GROUP BY 1 ORDER BY 1", WORKSPACE
    )}
    return {"leads": data.leads, "scored": scored, "grades_before": grades, "seconds": seconds, "sizes": data.sizes}


async def _follow(api: httpx.AsyncClient, job_id: str) -> tuple[dict[str, Any], list[tuple[float, int]]]:
    """Polls the job until it is no longer running; its last state and (seconds, done) along the way."""
    started = time.monotonic()
    progress: list[tuple[float, int]] = []
    while True:
        job: dict[str, Any] = (await api.get(f"/v1/scoring-model/rescores/{job_id}")).raise_for_status().json()
        progress.append((round(time.monotonic() - started, 2), job["done"]))
        if job["state"] != "running":
            return job, progress
        if time.monotonic() - started > JOB_TIMEOUT_SECONDS:
            raise TimeoutError(f"rescoring {job_id} still running after {JOB_TIMEOUT_SECONDS:.0f}s: {job}")
        await asyncio.sleep(0.25)


async def _rescore(
    api: httpx.AsyncClient, conn: asyncpg.Connection, meter: CpuMeter, start: Any, *, name: str,
    leads: Running | None = None, options: Options | None = None,
) -> dict[str, Any]:
    """One rescoring started by `start(api)` (its answer has the job), followed to the end; with `leads` and
    `options`, py-spy samples the leads process for the first profile_seconds."""
    events_before = await conn.fetchval("SELECT count(*) FROM leads.outbox WHERE type = 'voronka.lead.scored.v1'")
    before = meter.snapshot()
    job_id = await start(api)
    recording = None
    if leads is not None and options is not None and profiling.py_spy() is not None:
        recording = profiling.record(leads.pid, raw=LOG_DIR / "rescoring-profile.txt",
                                     svg=options.results_dir / "rescoring-profile.svg",
                                     seconds=options.profile_seconds, log=LOG_DIR / "py-spy.log")
    job, progress = await _follow(api, job_id)
    cpu = CpuMeter.cores(before, meter.snapshot())
    seconds = (job["finished_at"] and await conn.fetchval(
        "SELECT extract(epoch FROM finished_at - created_at)::float8 FROM leads.rescore_jobs WHERE id = $1",
        uuid.UUID(job_id),
    ))
    events = await conn.fetchval(
        "SELECT count(*) FROM leads.outbox WHERE type = 'voronka.lead.scored.v1'"
    ) - events_before
    result: dict[str, Any] = {
        "name": name, "job": job, "seconds": round(seconds, 2) if seconds else None,
        "leads_per_s": round(job["done"] / seconds) if seconds else None, "lead_scored_events": events,
        "cpu_cores": cpu, "progress": _thin(progress),
    }
    if recording is not None:
        result["profile_problems"] = await asyncio.to_thread(recording.wait)
        raw = LOG_DIR / "rescoring-profile.txt"
        if raw.exists():
            result["profile"] = profiling.summarize(raw, seconds=recording.seconds, rate=recording.rate,
                                                    rules=RESCORING_ACTIVITIES)
    return result


def _thin(progress: Sequence[tuple[float, int]], keep: int = 40) -> list[tuple[float, int]]:
    step = max(1, len(progress) // keep)
    return [*progress[::step], progress[-1]] if progress else []


# Where the leads process's CPU goes while it rescores (first matching rule wins).
RESCORING_ACTIVITIES: tuple[profiling.Rule, ...] = (
    ("outbox dispatcher (sequencer, courier, httpx)", profiling.ANY_FRAME,
     ("services/common/dispatcher.py", "/httpx/", "/httpcore/")),
    ("lead.scored events: payloads, CloudEvents, insert (publish_many)", profiling.ANY_FRAME,
     ("publish_many (", "cloud_event (", "LeadScoredV1")),
    ("inputs: rows -> Facts (score_inputs.facts_of, lead_country)", profiling.ANY_FRAME, ("facts_of (",)),
    ("inputs: queries (score_inputs.load)", profiling.ANY_FRAME, ("score_inputs.py",)),
    ("rule arithmetic (scoring.compute)", profiling.ANY_FRAME, ("_compute (", "scoring.py")),
    ("score upsert: lock + update (score_store._store)", profiling.ANY_FRAME, ("_store (",)),
    ("chunk: ids, checkpoint, transaction (RescoreWorker.step)", profiling.ANY_FRAME, ("RescoreWorker.step (",)),
    *profiling._SERVICE_TAIL,
)


async def _explain_filters(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """The lead list's first page filtered by the stored grade: a common grade, a rare one, with temperature."""
    queries = [
        ("grade=D (common)", LeadFilter(grade=["D"])),
        ("grade=A (rare)", LeadFilter(grade=["A"])),
        ("grade=B + temperature=warm", LeadFilter(grade=["B"], temperature=["warm"])),
        ("grade=A + status=new", LeadFilter(grade=["A"], status=["new"])),
    ]
    counts = {r["grade"]: r["n"] for r in await conn.fetch(
        "SELECT grade, count(*) AS n FROM leads.lead_scores WHERE workspace_id = $1 GROUP BY 1", WORKSPACE
    )}
    explained = []
    for name, where in queries:
        sql, args = await repository_sql(Query(name, [], where))
        plan = await _explain(conn, sql, args)
        explained.append({"name": name, "execution_ms": plan["execution_ms"], "indexes": plan["indexes"],
                          "plan": plan["plan"]})
    return [{"grade_counts": counts}, *explained]


async def run(postgres: BenchPostgres, options: Options) -> dict[str, Any]:
    admin_url = await postgres.fresh_database()
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute("SET maintenance_work_mem = '1GB'")
        seeded = await _seed(conn, options.search_leads)
        runs = []
        async with Processes(admin_url) as processes:
            leads = await processes.start_service("leads")
            meter = CpuMeter({"leads": leads.pid}, postmaster_pid=postgres.postmaster_pid())
            headers = {"Authorization": f"Bearer {admin_token(WORKSPACE, user=ADMIN)}"}
            async with httpx.AsyncClient(base_url=f"http://{HOST}:{leads.port}", headers=headers,
                                         timeout=60.0) as api:

                def patch(rules: list[dict[str, Any]]) -> Any:
                    async def start(client: httpx.AsyncClient) -> str:
                        response = await client.patch("/v1/scoring-model", json={"fit_rules": rules})
                        return str(response.raise_for_status().json()["rescore"]["id"])
                    return start

                async def requested(client: httpx.AsyncClient) -> str:
                    return str((await client.post("/v1/scoring-model/rescores")).raise_for_status().json()["id"])

                runs.append(await _rescore(api, conn, meter, patch(DEFAULT_RULES + TAG_RULES),
                                           name="model change: two tag rules added"))
                runs.append(await _rescore(api, conn, meter, patch(DEFAULT_RULES), name="model change undone "
                                           "(py-spy on the leads process)" if options.profile else
                                           "model change undone", leads=leads if options.profile else None,
                                           options=options))
                runs.append(await _rescore(api, conn, meter, requested, name="requested, nothing changed"))
                # Back to the measured run's model, for the baseline and the filters.
                runs.append(await _rescore(api, conn, meter, patch(DEFAULT_RULES + TAG_RULES),
                                           name="model change: two tag rules added, again"))
        mark = time.monotonic()
        await conn.execute(BASELINE, WORKSPACE, 1, True)
        baseline_seconds = time.monotonic() - mark
        await conn.execute("VACUUM (ANALYZE) leads.lead_scores")
        filters = await _explain_filters(conn)
    finally:
        await conn.close()

    measured = runs[0]
    return {
        "benchmark": "rescoring",
        "settings": {"leads": seeded["leads"], "chunk": rescore_worker.CHUNK, "target_seconds": TARGET_SECONDS},
        "seed": seeded,
        "runs": runs,
        "baseline": {"seconds": round(baseline_seconds, 2),
                     "leads_per_s": round(seeded["scored"] / baseline_seconds) if baseline_seconds else None,
                     "what": "one INSERT ... SELECT ... ON CONFLICT DO UPDATE computing the changed model's "
                             "scores in SQL (psql-style, no events, no checkpoints)"},
        "filters": filters,
        "targets": {"seconds_for_the_model_change": {
            "target": TARGET_SECONDS, "reached": measured["seconds"],
            "met": measured["seconds"] is not None and measured["seconds"] < TARGET_SECONDS,
        }},
    }


def section(result: dict[str, Any]) -> list[str]:
    """The summary's section (report.py numbers it)."""
    settings, baseline = result["settings"], result["baseline"]
    lines = [
        f"## Rescoring {settings['leads']:,} leads after a scoring-model change",
        "",
        f"`PATCH /v1/scoring-model` through HTTP; the leads process's RescoreWorker rescores in chunks of "
        f"{settings['chunk']:,} leads (one transaction each, with its checkpoint); seconds are the job's "
        "`finished_at - created_at` on the PostgreSQL clock. Baseline: the changed model's scores computed and "
        "written by one SQL statement.",
        "",
    ]
    rows = []
    for run in result["runs"]:
        cpu = run["cpu_cores"]
        rows.append([run["name"], f"{run['job']['done']:,}", f"{run['job']['changed']:,}",
                     f"{run['lead_scored_events']:,}", f"{run['seconds']}", f"{run['leads_per_s']:,}",
                     f"{cpu.get('leads', 0):.2f}", f"{cpu.get('postgres', 0):.2f}"])
    rows.append(["baseline: one SQL statement", f"{result['seed']['scored']:,}", "-", "-",
                 f"{baseline['seconds']}", f"{baseline['leads_per_s']:,}", "-", "-"])
    lines += ["| run | leads | grade moved | lead.scored | seconds | leads/s | leads cores | postgres cores |",
              "|---|---|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    target = result["targets"]["seconds_for_the_model_change"]
    lines += ["", f"Target: under {target['target']:.0f} s for the model change: "
              f"{'**met**' if target['met'] else '**not met**'} ({target['reached']} s).", ""]
    filters = result["filters"]
    lines += ["Lead list filtered by stored grade (first page, EXPLAIN ANALYZE):", ""]
    lines += [f"- {f['name']}: {f['execution_ms']} ms ({', '.join(f['indexes'])})" for f in filters[1:]]
    return [*lines, ""]
