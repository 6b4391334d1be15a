"""Benchmark: POST /v1/leads:batch with 1,000 leads a request, beside raw asyncpg inserting the same rows.

Each request carries 1,000 leads: mostly new people, about 5% repeats of earlier leads (the same email in
other letter case, or the same phone in another national format), phones written the way Russian forms send
them ("8 916 123-45-67", "+7 (916) 123-45-67", "89161234567"...) with the workspace's default region set to RU
through PATCH /v1/lead-settings. Each run gets a workspace of its own. Leads runs as deployed: dispatcher on,
reporting applying the lead.created events; between runs the bench waits until they are all delivered.

The baseline is the database floor: the bench process itself, on asyncpg, inserting the same rows (already
normalized: the generator knows each phone's E.164 form) with one multi-row INSERT ... SELECT FROM unnest per
1,000 into a plain table with a unique (workspace, email) index, ON CONFLICT DO NOTHING, one transaction each,
as many connections as the service run has clients. Rows go in email order, as the service claims its keys in
order, so that two concurrent batches repeating each other's leads wait instead of deadlocking. A repeat by phone
alone becomes a row of its own there (only email is unique): the baseline does less than the service.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import orjson

from bench import profiling
from bench.cpu import CpuMeter, Snapshot
from bench.load import ClosedLoopResult, Target, closed_loop
from bench.options import Options
from bench.stack import HOST, LOG_DIR, BenchPostgres, Processes, Running
from services.common.auth import Role, issue_token
from services.common.ids import new_id
from services.common.settings import get_settings

TARGET_LEADS_PER_S = 10_000.0
BATCH_SIZE = 1000
DUPLICATE_SHARE = 0.05
DEFAULT_REGION = "RU"
DELIVERY_TIMEOUT_SECONDS = 600.0
PAUSE_BETWEEN_RUNS_SECONDS = 1.0

BASELINE_SCHEMA = "bench_batch"
BASELINE_SQL = f"""
DROP SCHEMA IF EXISTS {BASELINE_SCHEMA} CASCADE;
CREATE SCHEMA {BASELINE_SCHEMA};
CREATE TABLE {BASELINE_SCHEMA}.leads (
    workspace_id uuid NOT NULL,
    id uuid NOT NULL,
    name text NOT NULL,
    email text,
    phone text,
    company text,
    source text,
    tags text[] NOT NULL DEFAULT '{{}}',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id)
);
CREATE UNIQUE INDEX ux_leads_email ON {BASELINE_SCHEMA}.leads (workspace_id, email);
"""
BASELINE_INSERT = f"""
INSERT INTO {BASELINE_SCHEMA}.leads (workspace_id, id, name, email, phone, company, source, tags)
SELECT $1, id, name, email, phone, company, source, string_to_array(tags, ',')
FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
    AS r(id, name, email, phone, company, source, tags)
ORDER BY email
ON CONFLICT DO NOTHING
"""

# Where the leads process's CPU goes while it takes batches in (first matching rule wins; see profiling.py).
BATCH_ACTIVITIES: tuple[profiling.Rule, ...] = (
    ("outbox dispatcher (sequencer, courier, httpx)", profiling.ANY_FRAME,
     ("services/common/dispatcher.py", "/httpx/", "/httpcore/", "/h11/", "_process_notification (")),
    ("phone parsing (normalize_phone, phonenumbers)", profiling.ANY_FRAME, ("normalize_phone (", "/phonenumbers/")),
    ("email validation (normalize_email, email_validator)", profiling.ANY_FRAME,
     ("normalize_email (", "/email_validator/")),
    ("item validation (LeadCreate, validate_lead, prepare)", profiling.ANY_FRAME, ("validate_lead (",)),
    ("events: payloads + CloudEvents (_created_event, _merged_event)", profiling.ANY_FRAME,
     ("_created_event (", "_merged_event (")),
    ("outbox insert (publish_many)", profiling.ANY_FRAME, ("publish_many (",)),
    ("identity claims (_claim)", profiling.ANY_FRAME, ("_claim (",)),
    ("lead insert (_insert_leads)", profiling.ANY_FRAME, ("_insert_leads (",)),
    ("merges (_merge_into)", profiling.ANY_FRAME, ("_merge_into (",)),
    ("touches (_add_touches)", profiling.ANY_FRAME, ("_add_touches (",)),
    ("grouping by identity (_group)", profiling.ANY_FRAME, ("_group (",)),
    ("request body: read + JSON + BatchRequest", profiling.ANY_FRAME,
     ("request_body_to_args (", "Request.body (", "Request.json (")),
    ("response: BatchResult", profiling.ANY_FRAME,
     ("model_response (", "BatchItemResult", "BatchResult", "Response.render (")),
    ("transaction begin/commit, pool", profiling.ANY_FRAME, ("transaction (", "asyncpg/transaction.py",
                                                             "asyncpg/pool.py")),
    ("JWT verification (current_principal)", profiling.ANY_FRAME, ("current_principal (",)),
    ("post_batch itself (loop, results)", profiling.LEAF, ("post_batch (",)),
    ("asyncpg protocol (encode/decode)", profiling.LEAF, ("/asyncpg/",)),
    *profiling._SERVICE_TAIL,
)

# ---- the leads ----------------------------------------------------------------------------------------

FIRST_NAMES = ("Anna", "Ivan", "Olga", "Dmitry", "Elena", "Sergey", "Maria", "Alexey", "Natalia", "Pavel",
               "Irina", "Andrey", "Tatiana", "Mikhail", "Yulia", "Nikolai")
LAST_NAMES = ("Ivanov", "Petrov", "Smirnov", "Kuznetsov", "Popov", "Sokolov", "Lebedev", "Kozlov", "Novikov",
              "Morozov", "Volkov", "Solovyov", "Vasiliev", "Zaitsev", "Pavlov", "Semenov")
COMPANIES = ("Romashka", "Vector", "Sever", "Alfa Trade", "Stroymontazh", "Tekhnopark", "Ural Steel",
             "Volga Logistics", "Baikal Foods", "Neva Soft")
SOURCES = ("Spring webinar", "Price list form", "Yandex Direct", "Partner referral", "Trade show")
TAGS = ("webinar", "pricing", "enterprise", "smb", "retail", "hot")
OPERATORS = ("916", "903", "925", "985", "926", "915", "977", "999")
# Ways people write a Russian mobile number into a form; all read as +7 with the workspace region RU.
PHONE_FORMATS: tuple[Callable[[str], str], ...] = (
    lambda d: f"8 {d[:3]} {d[3:6]}-{d[6:8]}-{d[8:]}",
    lambda d: f"+7 ({d[:3]}) {d[3:6]}-{d[6:8]}-{d[8:]}",
    lambda d: f"8{d}",
    lambda d: f"8({d[:3]}){d[3:]}",
    lambda d: f"{d[:3]} {d[3:6]} {d[6:8]} {d[8:]}",
    lambda d: f"+7{d}",
)


def phone_digits(n: int) -> str:
    """Lead n's ten national digits: an operator code and a subscriber number unique for n < 80 million."""
    subscriber = (n // len(OPERATORS) * 7_654_321 + 1_234_567) % 10_000_000  # 7654321 is prime to 10^7
    return f"{OPERATORS[n % len(OPERATORS)]}{subscriber:07d}"


def person_name(n: int) -> tuple[str, str]:
    return FIRST_NAMES[n % len(FIRST_NAMES)], LAST_NAMES[(n // len(FIRST_NAMES)) % len(LAST_NAMES)]


def email_of(n: int) -> str:
    first, last = person_name(n)
    return f"{first.lower()}.{last.lower()}.{n}@example.com"


@dataclass
class Batch:
    """One request's leads: the API's items, and the same leads as the baseline's normalized columns."""

    items: list[dict[str, Any]]
    columns: tuple[list[Any], ...]  # id, name, email, phone, company, source, tags (comma-joined)

    def body(self) -> bytes:
        return orjson.dumps({"items": self.items})


def batch(number: int, size: int = BATCH_SIZE) -> Batch:
    """Request `number`'s leads: n = number*size + k; about DUPLICATE_SHARE repeat an earlier lead of the run."""
    rng = random.Random(number)
    items: list[dict[str, Any]] = []
    columns: tuple[list[Any], ...] = ([], [], [], [], [], [], [])
    for k in range(size):
        n = number * size + k
        if n > 0 and rng.random() < DUPLICATE_SHARE:
            earlier = rng.randrange(n)
            first, last = person_name(earlier)
            name = f"{first} {last}"
            if rng.random() < 0.5:
                # The same address in other letter case: one key once lower-cased.
                item: dict[str, Any] = {"name": name, "email": email_of(earlier).upper()}
                email, phone = email_of(earlier), None
            else:
                # The same phone written another way, with a company the first submission lacked.
                digits = phone_digits(earlier)
                item = {"name": name, "phone": PHONE_FORMATS[(earlier + 1) % len(PHONE_FORMATS)](digits),
                        "company": COMPANIES[earlier % len(COMPANIES)]}
                email, phone = None, f"+7{digits}"
            company, source, tags = item.get("company"), None, ""
        else:
            first, last = person_name(n)
            digits = phone_digits(n)
            email, phone = email_of(n), f"+7{digits}"
            company = COMPANIES[n % len(COMPANIES)] if n % 3 else None
            source = SOURCES[n % len(SOURCES)]
            tag_list = [TAGS[n % len(TAGS)]] if n % 4 == 0 else []
            item = {"name": f"{first} {last}", "email": email, "phone": PHONE_FORMATS[n % len(PHONE_FORMATS)](digits),
                    "source": source, "tags": tag_list}
            if company:
                item["company"] = company
            tags = ",".join(tag_list)
        items.append(item)
        for column, value in zip(columns, (new_id(), item["name"], email, phone, company, source, tags),
                                 strict=True):
            column.append(value)
    return Batch(items, columns)


# ---- what one lead costs in Python, outside the service ------------------------------------------------


def per_lead_cpu_us(count: int = 2000) -> dict[str, float]:
    """CPU microseconds per lead, in this process, for the steps POST /v1/leads:batch runs on every item: the
    schema (LeadCreate, whose Email type already normalizes the address), the whole intake.validate_lead, and
    its parts on their own (email_validator, libphonenumber, a UUIDv7 as uuid.UUID). Evidence for the profile."""
    from services.leads import intake, normalize
    from services.leads.schemas import LeadCreate

    items = [item for number in range(count // BATCH_SIZE + 1) for item in batch(number).items][:count]
    settings = intake.CaptureSettings(default_region=DEFAULT_REGION)
    emails = [item["email"] for item in items if item.get("email")]
    phones = [item["phone"] for item in items if item.get("phone")]

    def cost(work: Callable[[], object], n: int) -> float:
        started = time.process_time()
        work()
        return round((time.process_time() - started) * 1e6 / n, 1)

    return {
        "LeadCreate.model_validate": cost(lambda: [LeadCreate.model_validate(i) for i in items], len(items)),
        "intake.validate_lead (schema + prepare)": cost(
            lambda: [intake.validate_lead(i, settings) for i in items], len(items)),
        "normalize_email": cost(lambda: [normalize.normalize_email(e) for e in emails], len(emails)),
        "normalize_phone (RU)": cost(lambda: [normalize.normalize_phone(p, DEFAULT_REGION) for p in phones],
                                     len(phones)),
        "new_id (UUIDv7)": cost(lambda: [new_id() for _ in items], len(items)),
    }


# ---- helpers shared with the other new benchmarks ------------------------------------------------------


def admin_token(workspace: uuid.UUID, role: Role = Role.admin, user: uuid.UUID | None = None) -> str:
    return issue_token(get_settings(), workspace_id=workspace, user_id=user or uuid.uuid4(), role=role)


async def api(port: int, method: str, path: str, token: str, body: Any = None) -> Any:
    """One request to a service for setting a run up; raises unless it answers 2xx. Its JSON answer."""
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=60.0) as client:
        response = await client.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})
    if response.status_code >= 300:
        raise RuntimeError(f"{method} {path} answered {response.status_code}: {response.text[:500]}")
    return response.json()


async def wait_delivered(conn: asyncpg.Connection, *, timeout: float = DELIVERY_TIMEOUT_SECONDS) -> float:
    """Waits until leads' dispatcher has positioned every outbox row and every subscriber's cursor passed the
    last one (events nobody subscribes to, such as lead.merged, count as passed); the seconds it took.

    Cheaper than probes.wait_drained's anti-join over the whole outbox, and right when some events go to no one.
    """
    started = time.monotonic()
    while True:
        row = await conn.fetchrow(
            """
            SELECT EXISTS (SELECT 1 FROM leads.outbox WHERE position IS NULL) AS unpositioned,
                   coalesce((SELECT max(position) FROM leads.outbox), 0) AS head,
                   (SELECT min(position) FROM leads.subscriptions) AS cursor
            """
        )
        assert row is not None
        if not row["unpositioned"] and (row["cursor"] is None or row["cursor"] >= row["head"]):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"events still undelivered after {timeout:.0f}s (head {row['head']}, "
                               f"cursor {row['cursor']})")
        await asyncio.sleep(0.1)


async def call_loop(
    call: Callable[[int], Awaitable[object]],
    *,
    clients: int,
    warmup: float,
    duration: float,
    on_window: Callable[[str], None] | None = None,
) -> ClosedLoopResult:
    """load.closed_loop for work that is not an HTTP request (the asyncpg baselines): `clients` tasks, each
    calling `call(number)` again as soon as the previous call returns; latencies of calls ending in the window.
    """
    numbers = itertools.count()
    result = ClosedLoopResult(clients=clients, seconds=duration)
    started = time.perf_counter()
    window_start, window_end = started + warmup, started + warmup + duration

    async def client() -> None:
        while (sent := time.perf_counter()) < window_end:
            try:
                await call(next(numbers))
            except (asyncpg.PostgresError, OSError) as exc:
                if window_start <= time.perf_counter() <= window_end:
                    result.record_error(f"{type(exc).__name__}: {exc}")
                continue
            done = time.perf_counter()
            if window_start <= done <= window_end:
                result.latencies.append(done - sent)

    async def edges() -> None:
        await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
        if on_window is not None:
            on_window("start")
        await asyncio.sleep(max(0.0, window_end - time.perf_counter()))
        if on_window is not None:
            on_window("end")

    tasks = [asyncio.create_task(client()) for _ in range(clients)]
    await edges()
    await asyncio.gather(*tasks)
    return result


def median_run(system: str, repeats: list[dict[str, Any]], key: str = "throughput_rps") -> dict[str, Any]:
    """The repetition with the median `key` (the lower middle of an even count), and all of them in short."""
    ordered = sorted(repeats, key=lambda r: r[key])
    chosen = ordered[(len(ordered) - 1) // 2]
    keep = ("throughput_rps", "leads_per_s", "p50_ms", "p99_ms", "errors")
    return {"system": system, **chosen, "repeats": [{k: r[k] for k in keep if k in r} for r in repeats]}


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


# ---- the runs -----------------------------------------------------------------------------------------


class Window:
    """CPU snapshots at a measured window's edges, and an optional hook when it starts."""

    def __init__(self, meter: CpuMeter, on_start: Callable[[], None] | None = None) -> None:
        self.meter = meter
        self.on_start = on_start
        self.snapshots: dict[str, Snapshot] = {}

    def __call__(self, edge: str) -> None:
        self.snapshots[edge] = self.meter.snapshot()
        if edge == "start" and self.on_start is not None:
            self.on_start()

    def cores(self) -> dict[str, float]:
        return CpuMeter.cores(self.snapshots["start"], self.snapshots["end"])


async def _voronka_run(
    leads: Running, conn: asyncpg.Connection, clients: int, options: Options, meter: CpuMeter, *,
    duration: float | None = None, on_start: Callable[[], None] | None = None, delivered: bool = True,
) -> dict[str, Any]:
    """One closed-loop run in a fresh workspace; then, with `delivered`, waits until its events are delivered
    (with the dispatcher off they stay in the outbox)."""
    workspace = uuid.uuid4()
    token = admin_token(workspace)
    await api(leads.port, "PATCH", "/v1/lead-settings", token, {"default_region": DEFAULT_REGION})
    target = Target(HOST, leads.port, "/v1/leads:batch", {"Authorization": f"Bearer {token}"})
    window = Window(meter, on_start)
    result = await closed_loop(target, lambda number: batch(number).body(), clients=clients,
                               warmup=options.warmup, duration=duration or options.duration, expect_status=200,
                               on_window=window)
    run = {**result.as_json(), "cpu_cores": window.cores()}
    run["leads_per_s"] = run["throughput_rps"] * BATCH_SIZE
    # What the requests did, from the database (warm-up and window together): every item created or merged.
    outcome = await conn.fetchrow(
        """
        SELECT (SELECT count(*) FROM leads.leads WHERE workspace_id = $1) AS created,
               (SELECT count(*) FROM leads.lead_touches WHERE workspace_id = $1) AS touches
        """,
        workspace,
    )
    assert outcome is not None
    run["outcome"] = {"created": outcome["created"], "merged": outcome["touches"] - outcome["created"]}
    if delivered:
        run["delivery_after_s"] = round(await wait_delivered(conn), 2)
    return run


async def _baseline_run(pool: asyncpg.Pool, clients: int, options: Options, meter: CpuMeter) -> dict[str, Any]:
    workspace = uuid.uuid4()

    async def insert(number: int) -> None:
        columns = batch(number).columns
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(BASELINE_INSERT, workspace, *columns)

    window = Window(meter)
    result = await call_loop(insert, clients=clients, warmup=options.warmup, duration=options.duration,
                             on_window=window)
    run = {**result.as_json(), "cpu_cores": window.cores()}
    run["leads_per_s"] = run["throughput_rps"] * BATCH_SIZE
    rows = await pool.fetchval(f"SELECT count(*) FROM {BASELINE_SCHEMA}.leads WHERE workspace_id = $1", workspace)
    run["outcome"] = {"inserted": rows}
    return run


async def _profile(leads: Running, conn: asyncpg.Connection, clients: int, options: Options,
                   meter: CpuMeter) -> dict[str, Any]:
    raw, svg = LOG_DIR / "batch-profile.txt", options.results_dir / "batch-profile.svg"
    recordings: list[profiling.Recording] = []

    def start_sampling() -> None:
        recordings.append(profiling.record(leads.pid, raw=raw, svg=svg, seconds=options.profile_seconds,
                                           log=LOG_DIR / "py-spy.log"))

    run = await _voronka_run(leads, conn, clients, options, meter, duration=options.profile_seconds + 1.0,
                             on_start=start_sampling)
    problems = await asyncio.to_thread(recordings[0].wait) if recordings else ["py-spy did not start"]
    summary = (profiling.summarize(raw, seconds=options.profile_seconds, rate=recordings[0].rate,
                                   rules=BATCH_ACTIVITIES) if raw.exists() else {})
    return {"run": {k: run[k] for k in ("clients", "leads_per_s", "p50_ms", "p99_ms", "errors")},
            "svg": svg.name if svg.exists() else None, "problems": problems,
            "rate": recordings[0].rate if recordings else None, **summary}


async def run(postgres: BenchPostgres, options: Options) -> dict[str, Any]:
    python_costs = await asyncio.to_thread(per_lead_cpu_us)
    admin_url = await postgres.fresh_database()
    conn = await asyncpg.connect(admin_url)
    pool = await asyncpg.create_pool(admin_url, min_size=1, max_size=max(options.batch_clients))
    try:
        await conn.execute(BASELINE_SQL)
        async with Processes(admin_url) as processes:
            reporting = await processes.start_service("reporting")
            leads = await processes.start_service("leads")
            meter = CpuMeter({"leads": leads.pid, "reporting": reporting.pid},
                             postmaster_pid=postgres.postmaster_pid())
            # One request first, to check what a batch does (1,000 items: created, merged, none rejected).
            probe_token = admin_token(uuid.uuid4())
            await api(leads.port, "PATCH", "/v1/lead-settings", probe_token, {"default_region": DEFAULT_REGION})
            first = await api(leads.port, "POST", "/v1/leads:batch", probe_token, {"items": batch(0).items})
            probe = {k: first[k] for k in ("created", "merged", "rejected")}
            probe["rejections"] = [i for i in first["items"] if i["outcome"] == "rejected"][:3]
            await wait_delivered(conn)

            runs: list[dict[str, Any]] = []
            ratios: list[dict[str, Any]] = []
            for clients in options.batch_clients:
                voronka_runs, baseline_runs = [], []
                for _ in range(options.repeat):
                    await asyncio.sleep(PAUSE_BETWEEN_RUNS_SECONDS)
                    voronka_runs.append(await _voronka_run(leads, conn, clients, options, meter))
                    await asyncio.sleep(PAUSE_BETWEEN_RUNS_SECONDS)
                    baseline_runs.append(await _baseline_run(pool, clients, options, meter))
                voronka, base = median_run("voronka", voronka_runs), median_run("baseline", baseline_runs)
                runs += [voronka, base]
                ratios.append({"clients": clients, "throughput": ratio(voronka["leads_per_s"], base["leads_per_s"]),
                               "p50": ratio(voronka["p50_ms"], base["p50_ms"]),
                               "p99": ratio(voronka["p99_ms"], base["p99_ms"])})

            top = max(options.batch_clients)
            profile = (await _profile(leads, conn, top, options, meter)
                       if options.profile and profiling.py_spy() is not None else None)

            # The same load with the dispatcher off: what delivering 1,000 events a request costs.
            processes.stop("leads")
            leads = await processes.start_service("leads", env={"VORONKA_DISPATCHER_ENABLED": "false"})
            meter.pids["leads"] = leads.pid
            off_runs = []
            for _ in range(options.repeat):
                await asyncio.sleep(PAUSE_BETWEEN_RUNS_SECONDS)
                off_runs.append(await _voronka_run(leads, conn, top, options, meter, delivered=False))
            dispatcher_off = median_run("voronka, dispatcher off", off_runs)
    finally:
        await pool.close()
        await conn.close()

    best = max((r for r in runs if r["system"] == "voronka"), key=lambda r: r["leads_per_s"])
    return {
        "benchmark": "batch_ingest",
        "settings": {"batch_size": BATCH_SIZE, "duplicate_share": DUPLICATE_SHARE, "default_region": DEFAULT_REGION,
                     "clients": list(options.batch_clients), "warmup_s": options.warmup,
                     "duration_s": options.duration, "repeat": options.repeat,
                     "leads_pool_max": get_settings().db_pool_max},
        "probe": probe,
        "python_cpu_us_per_lead": python_costs,
        "runs": runs,
        "ratios": ratios,
        "dispatcher_off": dispatcher_off,
        "profile": profile,
        "targets": {"leads_per_s": {"target": TARGET_LEADS_PER_S, "reached": best["leads_per_s"],
                                    "at_clients": best["clients"]}},
    }

