"""Benchmark: GET /v1/leads latency with a million leads in one workspace, beside the same SQL run on asyncpg.

The leads are written straight into leads.leads and leads.lead_identities by one INSERT ... SELECT FROM
generate_series each (not through the API: a million leads through it would take the run's whole budget), with
the tables' indexes dropped first and re-created afterwards from their own definitions (pg_get_indexdef), as a
bulk load would; then VACUUM ANALYZE, the state autovacuum would leave. The rows look like a year of a sales
team's work: 50 owners (15% of leads unassigned), 20 sources with skewed volumes, each source with its channel,
statuses from new (30%) to merged (2%), 12 tags of different frequency, names from a few dozen first and last
names, 90% with an email and 80% with a phone, created_at spread over a year and growing towards now, and ids
that are UUIDv7 of created_at (services/common/ids.py), so newest-first is id order as in production.

Then, for each query — the default first page, each filter alone, name/email/phone search, combinations, a rep's
view and deep pages through a cursor — a few closed-loop clients call the API, then the same number of asyncpg
connections run the exact SQL the repository builds for it (LeadRepository.page with a recording connection),
so the ratio shows what HTTP, auth and serialization add to the database's work. Each query's EXPLAIN (ANALYZE,
BUFFERS) goes into the result with the indexes it used, and the baseline connections report whether PostgreSQL
switched the prepared statement to a generic plan (asyncpg prepares every query; after five runs PostgreSQL may).
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import urlencode

import asyncpg
import httpx
import orjson

from bench import profiling
from bench.batch_ingest import Window, admin_token, call_loop, ratio
from bench.cpu import CpuMeter
from bench.load import ClosedLoopResult, Target, closed_loop, percentile
from bench.options import Options
from bench.stack import HOST, LOG_DIR, BenchPostgres, Processes, Running
from services.common.auth import Principal, Role
from services.leads.repository import LeadFilter, LeadRepository, Position

TARGET_P95_MS = 30.0
PAGE = 50  # the API's default page size
WORKSPACE = uuid.UUID("0193a1f0-7c2e-7000-8000-736561726368")
ADMIN = uuid.UUID("0193a1f0-7c2e-7000-8000-61646d696e21")
NOW = datetime(2026, 11, 1, tzinfo=UTC)  # fixed, so that every run loads the same rows
YEAR = timedelta(days=365)

FIRST_NAMES = (
    "Anna", "Ivan", "Olga", "Dmitry", "Elena", "Sergey", "Maria", "Alexey", "Natalia", "Pavel", "Irina", "Andrey",
    "Tatiana", "Mikhail", "Yulia", "Nikolai", "Svetlana", "Vladimir", "Ekaterina", "Artem", "Daria", "Maxim",
    "Polina", "Roman", "Ksenia", "Igor", "Victoria", "Oleg", "Alina", "Denis", "John", "Emma", "Lukas", "Sofia",
    "Ahmed", "Li", "Chen", "Fatima", "Marco", "Julia",
)
LAST_NAMES = (
    "Ivanov", "Petrova", "Smirnov", "Kuznetsova", "Popov", "Sokolova", "Lebedev", "Kozlova", "Novikov", "Morozova",
    "Volkov", "Solovyova", "Vasiliev", "Zaitseva", "Pavlov", "Semenova", "Golubev", "Vinogradova", "Bogdanov",
    "Vorobyova", "Fedorov", "Mikhailova", "Belyaev", "Tarasova", "Belov", "Komarova", "Orlov", "Kiseleva",
    "Makarov", "Andreeva", "Kovalev", "Ilyina", "Gusev", "Titova", "Kuzmin", "Kudryavtseva", "Baranov", "Kulikova",
    "Alekseev", "Stepanova", "Yakovlev", "Sorokina", "Sergeev", "Romanova", "Zakharov", "Borisova", "Korolev",
    "Gerasimova", "Ponomarev", "Grigorieva", "Smith", "Müller", "Rossi", "Wang", "Garcia", "Kowalski", "Nowak",
    "Schmidt", "Dubois", "Silva",
)
DOMAINS = ("gmail.com", "yandex.ru", "mail.ru", "outlook.com", "romashka.ru", "vector-group.com", "sever.io",
           "ural-steel.ru", "neva-soft.ru", "baikal-foods.com")
COMPANY_WORDS = ("Romashka", "Vector", "Sever", "Alfa", "Stroy", "Tekhno", "Ural", "Volga", "Baikal", "Neva",
                 "Orion", "Polyus", "Granit", "Sibir", "Kristall", "Meridian")
COMPANY_KINDS = ("Trade", "Group", "Soft", "Logistics", "Foods", "Steel", "Montazh", "Consulting", "Retail", "Lab")
POSITIONS = ("CEO", "Head of procurement", "Sales director", "Marketing manager", "CTO", "Office manager")
# (name, channel): each source feeds one channel; the first ones bring most leads.
SOURCES = (
    ("Website contact form", "web_form"), ("Yandex Direct", "ads"), ("Price list form", "web_form"),
    ("Google Ads", "ads"), ("Cold list: retail", "cold_list"), ("Partner: Orion", "partner"),
    ("Spring webinar", "event"), ("Mailchimp newsletter", "marketing_tool"), ("Customer referral", "referral"),
    ("Trade show Moscow", "event"), ("VK Ads", "ads"), ("Demo request form", "web_form"),
    ("Cold list: logistics", "cold_list"), ("HubSpot sync", "marketing_tool"), ("Partner: Polyus", "partner"),
    ("Referral programme", "referral"), ("Manual entry", "manual"), ("Autumn conference", "event"),
    ("Chat widget", "web_form"), ("Other", "other"),
)
# (tag, share of leads that carry it)
TAGS = (("webinar", 0.20), ("pricing", 0.15), ("smb", 0.12), ("newsletter", 0.10), ("cold", 0.10),
        ("enterprise", 0.08), ("retail", 0.06), ("hot", 0.05), ("demo-requested", 0.05),
        ("conference-2025", 0.04), ("partner-lead", 0.03), ("vip", 0.02))
REASONS = ("no_budget", "no_need", "no_authority", "bad_timing", "competitor", "unreachable", "spam")

LOAD_LEADS = """
INSERT INTO leads.leads (
    workspace_id, id, name, email, phone, company, position, tags, source, source_id, channel, utm, owner_id,
    status, disqualification_reason, created_by, created_at, updated_at, status_changed_at
)
SELECT $1,
       -- UUIDv7 of created_at: 48 bits of Unix milliseconds, version 7, random bits, the RFC 4122 variant.
       (lpad(to_hex((extract(epoch FROM created_at) * 1000)::bigint), 12, '0') || '7' || substr(h, 1, 3)
        || substr('89ab', variant + 1, 1) || substr(h, 4, 15))::uuid,
       first_name || ' ' || last_name,
       CASE WHEN r_email < 0.9 THEN lower(first_name) || '.' || lower(last_name) || i || '@' || domain END,
       -- 7919 is prime to 10^9, so every lead's number is different.
       CASE WHEN r_phone < 0.8 THEN '+79' || lpad(((i::bigint * 7919 + 12345) % 1000000000)::text, 9, '0') END,
       CASE WHEN r_company < 0.7 THEN company END,
       CASE WHEN r_company < 0.4 THEN position END,
       tags, ($5::text[])[source_no], ($4::uuid[])[source_no], ($6::text[])[source_no],
       CASE WHEN ($6::text[])[source_no] = 'ads' THEN '{"source": "yandex", "medium": "cpc"}'::jsonb
            ELSE '{}'::jsonb END,
       CASE WHEN r_owner >= 0.15 THEN ($3::uuid[])[1 + floor((r_owner - 0.15) / 0.85 * cardinality($3::uuid[]))::int]
       END,
       status,
       CASE WHEN status = 'disqualified' THEN ($7::text[])[1 + floor(r_reason * cardinality($7::text[]))::int] END,
       $8, created_at, updated_at, updated_at
FROM (
    SELECT i, md5(i::text) AS h, floor(random() * 4)::int AS variant,
           ($9::text[])[1 + floor(random() * cardinality($9::text[]))::int] AS first_name,
           ($10::text[])[1 + floor(random() * cardinality($10::text[]))::int] AS last_name,
           ($11::text[])[1 + floor(random() * cardinality($11::text[]))::int] AS domain,
           ($12::text[])[1 + floor(random() * cardinality($12::text[]))::int] || ' '
               || ($13::text[])[1 + floor(random() * cardinality($13::text[]))::int] AS company,
           ($14::text[])[1 + floor(random() * cardinality($14::text[]))::int] AS position,
           random() AS r_email, random() AS r_phone, random() AS r_company, random() AS r_owner,
           random() AS r_reason,
           1 + floor(power(random(), 2) * cardinality($4::uuid[]))::int AS source_no,
           array_remove(ARRAY(SELECT CASE WHEN random() < share THEN tag END
                              FROM unnest($15::text[], $16::float8[]) AS t(tag, share) WHERE i > 0), NULL) AS tags,
           CASE WHEN r < 0.30 THEN 'new' WHEN r < 0.50 THEN 'working' WHEN r < 0.62 THEN 'nurturing'
                WHEN r < 0.72 THEN 'qualified' WHEN r < 0.80 THEN 'converted' WHEN r < 0.98 THEN 'disqualified'
                ELSE 'merged' END AS status,
           created_at,
           created_at + ($17::timestamptz - created_at) * power(random(), 3) AS updated_at
    FROM (
        SELECT i, random() AS r,
               -- Spread over the year before NOW, denser towards it (the team grows).
               $17::timestamptz - $18::interval + $18::interval * power(i::float8 / $2::int, 0.7) AS created_at
        FROM generate_series(1, $2::int) AS i
    ) g
) s
"""
LOAD_IDENTITIES = """
INSERT INTO leads.lead_identities (workspace_id, kind, value, lead_id)
SELECT workspace_id, 'email', email, id FROM leads.leads WHERE workspace_id = $1 AND email IS NOT NULL
UNION ALL
SELECT workspace_id, 'phone', phone, id FROM leads.leads WHERE workspace_id = $1 AND phone IS NOT NULL
"""
LOAD_SOURCES = """
INSERT INTO leads.sources (workspace_id, id, name, channel, secret, token_hash, created_by)
SELECT $1, id, name, channel, 'whsec_' || md5(name), md5(name || 'token'), $2
FROM unnest($3::uuid[], $4::text[], $5::text[]) AS s(id, name, channel)
"""

# Where the leads process's CPU goes while it serves pages of leads (first matching rule wins).
SEARCH_ACTIVITIES: tuple[profiling.Rule, ...] = (
    ("JWT verification (current_principal)", profiling.ANY_FRAME, ("current_principal (",)),
    ("query: LeadRepository.page (asyncpg: send, wait, decode records)", profiling.ANY_FRAME,
     ("LeadRepository.page (",)),
    ("rows -> LeadOut (model_validate in list_leads)", profiling.ANY_FRAME, ("list_leads (",)),
    ("response: FastAPI validates LeadPage again, jsonable_encoder, JSON", profiling.ANY_FRAME,
     ("serialize_response (", "jsonable_encoder (", "Response.render (", "JSONResponse.")),
    ("query parameters (Query validation)", profiling.ANY_FRAME, ("request_params_to_args (",)),
    ("pool acquire/release (ReadConn)", profiling.ANY_FRAME, ("read_connection (", "asyncpg/pool.py")),
    *profiling._SERVICE_TAIL,
)

_INDEX_USE = re.compile(r"(?:Index(?: Only)? Scan(?: Backward)? using|Bitmap Index Scan on) (\w+)")
_EXECUTION = re.compile(r"Execution Time: ([\d.]+) ms")


# ---- loading ------------------------------------------------------------------------------------------


async def _drop_indexes(conn: asyncpg.Connection, table: str) -> list[str]:
    """Drops the table's indexes and key constraints; the statements that re-create them as they were."""
    constraints = await conn.fetch(
        "SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint "
        "WHERE conrelid = $1::regclass AND contype IN ('p', 'u')",
        table,
    )
    indexes = await conn.fetch(
        """
        SELECT indexrelid::regclass::text AS name, pg_get_indexdef(indexrelid) AS definition FROM pg_index i
        WHERE indrelid = $1::regclass
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid)
        """,
        table,
    )
    recreate = [f'ALTER TABLE {table} ADD CONSTRAINT "{c["conname"]}" {c["definition"]}' for c in constraints]
    recreate += [i["definition"] for i in indexes]
    for c in constraints:
        await conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{c["conname"]}"')
    for i in indexes:
        await conn.execute(f"DROP INDEX {i['name']}")
    return recreate


@dataclass
class Dataset:
    leads: int
    owners: list[uuid.UUID]
    sources: list[uuid.UUID]
    seconds: dict[str, float] = field(default_factory=dict)
    sizes: dict[str, str] = field(default_factory=dict)


async def load(conn: asyncpg.Connection, count: int) -> Dataset:
    """Writes `count` leads (and their identities and sources) into WORKSPACE; times each step."""
    owners = [uuid.uuid5(WORKSPACE, f"owner-{k}") for k in range(50)]
    sources = [uuid.uuid5(WORKSPACE, f"source-{k}") for k in range(len(SOURCES))]
    data = Dataset(count, owners, sources)
    await conn.execute("SET maintenance_work_mem = '1GB'")
    await conn.execute("SELECT setseed(0.42)")

    started = time.monotonic()
    recreate = [*await _drop_indexes(conn, "leads.leads"), *await _drop_indexes(conn, "leads.lead_identities")]
    await conn.execute(LOAD_SOURCES, WORKSPACE, ADMIN, sources, [s[0] for s in SOURCES], [s[1] for s in SOURCES])
    await conn.execute(
        LOAD_LEADS, WORKSPACE, count, owners, sources, [s[0] for s in SOURCES], [s[1] for s in SOURCES],
        list(REASONS), ADMIN, list(FIRST_NAMES), list(LAST_NAMES), list(DOMAINS), list(COMPANY_WORDS),
        list(COMPANY_KINDS), list(POSITIONS), [t[0] for t in TAGS], [t[1] for t in TAGS], NOW, YEAR,
    )
    data.seconds["insert_leads"] = time.monotonic() - started
    mark = time.monotonic()
    await conn.execute(LOAD_IDENTITIES, WORKSPACE)
    data.seconds["insert_identities"] = time.monotonic() - mark
    mark = time.monotonic()
    for statement in recreate:
        await conn.execute(statement)
    data.seconds["create_indexes"] = time.monotonic() - mark
    mark = time.monotonic()
    await conn.execute("VACUUM (ANALYZE) leads.leads")
    await conn.execute("VACUUM (ANALYZE) leads.lead_identities")
    data.seconds["vacuum_analyze"] = time.monotonic() - mark
    data.seconds["total"] = time.monotonic() - started
    data.seconds = {k: round(v, 2) for k, v in data.seconds.items()}
    for table in ("leads.leads", "leads.lead_identities"):
        row = await conn.fetchrow(
            "SELECT pg_size_pretty(pg_table_size($1::regclass)) AS heap, "
            "pg_size_pretty(pg_indexes_size($1::regclass)) AS indexes",
            table,
        )
        assert row is not None
        data.sizes[table] = f"{row['heap']} table, {row['indexes']} indexes"
    return data


# ---- the queries --------------------------------------------------------------------------------------


@dataclass
class Query:
    name: str
    params: list[tuple[str, str]]
    where: LeadFilter
    after: Position | None = None
    rep: uuid.UUID | None = None  # asked by this rep (sees only their own leads); else by an admin
    first_page: bool = True
    filtered: bool = True

    def principal(self) -> Principal:
        if self.rep is not None:
            return Principal(workspace_id=WORKSPACE, user_id=self.rep, role=Role.rep)
        return Principal(workspace_id=WORKSPACE, user_id=ADMIN, role=Role.admin)

    def path(self) -> str:
        return "/v1/leads" + (f"?{urlencode(self.params)}" if self.params else "")


def cursor_after(lead_id: uuid.UUID) -> str:
    """The cursor GET /v1/leads gives out after this lead in the default (-created_at) order."""
    raw = orjson.dumps({"s": "-created_at", "k": None, "i": str(lead_id)})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def queries(conn: asyncpg.Connection, data: Dataset) -> list[Query]:
    """The queries measured, with values picked from the loaded rows so that each finds what it looks for."""
    middle = await conn.fetchrow(
        "SELECT id, email, phone FROM leads.leads WHERE workspace_id = $1 AND email IS NOT NULL AND phone IS NOT NULL "
        "ORDER BY id DESC OFFSET $2 LIMIT 1",
        WORKSPACE, data.leads // 2,
    )
    qualified = await conn.fetchval(
        "SELECT id FROM leads.leads WHERE workspace_id = $1 AND status = 'qualified' "
        "ORDER BY id DESC OFFSET $2 LIMIT 1",
        WORKSPACE, data.leads // 20,
    )
    assert middle is not None
    assert qualified is not None
    owner = data.owners[0]
    email_part = middle["email"].split("@")[0].split(".", 1)[1]  # "smirnov123456": one lead
    digits = middle["phone"][3:10]  # seven digits of its number, typed the way people type them
    typed_phone = f"{digits[:3]} {digits[3:5]}-{digits[5:]}"
    after, before = NOW - timedelta(days=200), NOW - timedelta(days=170)
    return [
        Query("default first page (no filter)", [], LeadFilter(), filtered=False),
        Query("status=qualified", [("status", "qualified")], LeadFilter(status=["qualified"])),
        Query("owner_id", [("owner_id", str(owner))], LeadFilter(owner_id=owner)),
        Query("tag=vip (2%)", [("tag", "vip")], LeadFilter(tag="vip")),
        Query("tag=webinar (20%)", [("tag", "webinar")], LeadFilter(tag="webinar")),
        Query("channel=referral", [("channel", "referral")], LeadFilter(channel="referral")),
        Query("created in one month, 6 months ago",
              [("created_after", after.isoformat()), ("created_before", before.isoformat())],
              LeadFilter(created_after=after, created_before=before)),
        Query("q: name part (kuznetsova)", [("q", "kuznetsova")], LeadFilter(text="kuznetsova")),
        Query(f"q: email part ({email_part})", [("q", email_part)], LeadFilter(text=email_part)),
        Query(f"q: phone digits ({typed_phone})", [("q", typed_phone)], LeadFilter(text=digits)),
        Query("status=working + owner_id + channel=web_form",
              [("status", "working"), ("owner_id", str(owner)), ("channel", "web_form")],
              LeadFilter(status=["working"], owner_id=owner, channel="web_form")),
        Query("status=new + tag=webinar + q=kuznetsova",
              [("status", "new"), ("tag", "webinar"), ("q", "kuznetsova")],
              LeadFilter(status=["new"], tag="webinar", text="kuznetsova")),
        Query("status=new + created in one month", [("status", "new"), ("created_after", after.isoformat()),
                                                    ("created_before", before.isoformat())],
              LeadFilter(status=["new"], created_after=after, created_before=before)),
        Query("a rep's own leads, status=working", [("status", "working")], LeadFilter(status=["working"]),
              rep=owner),
        Query("deep page: cursor half-way through (no filter)", [("cursor", cursor_after(middle["id"]))],
              LeadFilter(), after=Position(key=None, id=middle["id"]), first_page=False, filtered=False),
        Query("deep page: cursor deep into status=qualified",
              [("status", "qualified"), ("cursor", cursor_after(qualified))], LeadFilter(status=["qualified"]),
              after=Position(key=None, id=qualified), first_page=False),
    ]


class _Recorder:
    """Stands in for a connection: keeps the SQL and arguments LeadRepository.page would send."""

    sql = ""
    args: tuple[Any, ...] = ()

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        self.sql, self.args = sql, args
        return []


async def repository_sql(query: Query) -> tuple[str, tuple[Any, ...]]:
    recorder = _Recorder()
    await LeadRepository(cast(Any, recorder), query.principal()).page(
        PAGE + 1, sort="-created_at", after=query.after, where=query.where
    )
    return recorder.sql, recorder.args


def latencies(result: ClosedLoopResult) -> dict[str, Any]:
    ordered = sorted(result.latencies)
    return {
        "requests": len(ordered),
        "per_s": len(ordered) / result.seconds if result.seconds else None,
        "p50_ms": percentile(ordered, 50) * 1000, "p95_ms": percentile(ordered, 95) * 1000,
        "p99_ms": percentile(ordered, 99) * 1000, "max_ms": ordered[-1] * 1000 if ordered else None,
        "errors": result.errors, "error_samples": result.error_samples,
    }


async def _explain(conn: asyncpg.Connection, sql: str, args: Sequence[Any]) -> dict[str, Any]:
    rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", *args)
    plan = [r[0] for r in rows]
    text = "\n".join(plan)
    execution = _EXECUTION.search(text)
    return {
        "indexes": list(dict.fromkeys(_INDEX_USE.findall(text))),
        "execution_ms": float(execution.group(1)) if execution else None,
        "plan": plan,
    }


async def _plan_cache(pool: asyncpg.Pool, sql: str, clients: int) -> dict[str, int]:
    """How each baseline connection ran the prepared statement: custom plans, and generic ones after switching."""
    totals = {"generic_plans": 0, "custom_plans": 0}
    connections = [await pool.acquire() for _ in range(clients)]
    try:
        for conn in connections:
            row = await conn.fetchrow(
                "SELECT sum(generic_plans)::int AS generic, sum(custom_plans)::int AS custom "
                "FROM pg_prepared_statements WHERE statement = $1",
                sql,
            )
            if row is not None:
                totals["generic_plans"] += row["generic"] or 0
                totals["custom_plans"] += row["custom"] or 0
    finally:
        for conn in connections:
            await pool.release(conn)
    return totals


async def _measure(
    query: Query, port: int, pool: asyncpg.Pool, conn: asyncpg.Connection, options: Options, meter: CpuMeter
) -> dict[str, Any]:
    sql, args = await repository_sql(query)
    token = admin_token(WORKSPACE, Role.rep, query.rep) if query.rep else admin_token(WORKSPACE, user=ADMIN)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=60.0) as client:
        answer = await client.get(query.path(), headers=headers)
    if answer.status_code != 200:
        raise RuntimeError(f"GET {query.path()} answered {answer.status_code}: {answer.text[:300]}")
    api_ids = [item["id"] for item in answer.json()["items"]]
    sql_ids = [str(r["id"]) for r in (await conn.fetch(sql, *args))[:PAGE]]

    target = Target(HOST, port, query.path(), headers, method="GET")
    window = Window(meter)
    api = await closed_loop(target, lambda _: b"", clients=options.search_clients, warmup=options.search_warmup,
                            duration=options.search_duration, expect_status=200, on_window=window)
    api_cpu = window.cores()

    async def fetch(_: int) -> None:
        async with pool.acquire() as baseline_conn:
            await baseline_conn.fetch(sql, *args)

    window = Window(meter)
    base = await call_loop(fetch, clients=options.search_clients, warmup=options.search_warmup,
                           duration=options.search_duration, on_window=window)
    voronka, baseline = latencies(api), latencies(base)
    return {
        "name": query.name,
        "path": query.path(),
        "first_page": query.first_page,
        "filtered": query.filtered,
        "rows_returned": len(api_ids),
        "same_rows_as_baseline": api_ids == sql_ids,
        "voronka": {**voronka, "cpu_cores": api_cpu},
        "baseline": {**baseline, "cpu_cores": window.cores(), "plan_cache": await _plan_cache(
            pool, sql, options.search_clients)},
        "ratio_p50": ratio(voronka["p50_ms"], baseline["p50_ms"]),
        "ratio_p95": ratio(voronka["p95_ms"], baseline["p95_ms"]),
        "explain": await _explain(conn, sql, args),
        "sql": sql,
    }


async def _profile(query: Query, leads: Running, options: Options, meter: CpuMeter) -> dict[str, Any]:
    """py-spy on leads while it serves `query` to the same clients: what a page costs besides the database."""
    raw, svg = LOG_DIR / "search-profile.txt", options.results_dir / "search-profile.svg"
    recordings: list[profiling.Recording] = []

    def start_sampling() -> None:
        recordings.append(profiling.record(leads.pid, raw=raw, svg=svg, seconds=options.profile_seconds,
                                           log=LOG_DIR / "py-spy.log"))

    token = admin_token(WORKSPACE, user=ADMIN)
    target = Target(HOST, leads.port, query.path(), {"Authorization": f"Bearer {token}"}, method="GET")
    window = Window(meter, start_sampling)
    result = await closed_loop(target, lambda _: b"", clients=options.search_clients, warmup=options.search_warmup,
                               duration=options.profile_seconds + 1.0, expect_status=200, on_window=window)
    problems = await asyncio.to_thread(recordings[0].wait) if recordings else ["py-spy did not start"]
    summary = (profiling.summarize(raw, seconds=options.profile_seconds, rate=recordings[0].rate,
                                   rules=SEARCH_ACTIVITIES) if raw.exists() else {})
    return {"query": query.name, "run": latencies(result), "cpu_cores": window.cores(),
            "svg": svg.name if svg.exists() else None, "problems": problems,
            "rate": recordings[0].rate if recordings else None, **summary}


async def run(postgres: BenchPostgres, options: Options) -> dict[str, Any]:
    admin_url = await postgres.fresh_database()
    conn = await asyncpg.connect(admin_url)
    pool = await asyncpg.create_pool(admin_url, min_size=options.search_clients, max_size=options.search_clients)
    try:
        data = await load(conn, options.search_leads)
        distribution = {
            r["status"]: r["n"] for r in await conn.fetch(
                "SELECT status, count(*) AS n FROM leads.leads WHERE workspace_id = $1 GROUP BY 1 ORDER BY 2 DESC",
                WORKSPACE,
            )
        }
        measured = await queries(conn, data)
        async with Processes(admin_url) as processes:
            leads = await processes.start_service("leads")
            meter = CpuMeter({"leads": leads.pid}, postmaster_pid=postgres.postmaster_pid())
            results = [await _measure(q, leads.port, pool, conn, options, meter) for q in measured]
            profile = (await _profile(measured[0], leads, options, meter)
                       if options.profile and profiling.py_spy() is not None else None)
    finally:
        await pool.close()
        await conn.close()

    filtered = [r for r in results if r["filtered"] and r["first_page"]]
    worst = max(filtered, key=lambda r: r["voronka"]["p95_ms"])
    return {
        "benchmark": "lead_search",
        "settings": {"leads": data.leads, "clients": options.search_clients, "warmup_s": options.search_warmup,
                     "duration_s": options.search_duration, "page_size": PAGE, "owners": len(data.owners),
                     "sources": len(data.sources)},
        "load": {"seconds": data.seconds, "sizes": data.sizes, "statuses": distribution},
        "queries": results,
        "profile": profile,
        "targets": {"p95_ms_filtered_first_page": {
            "target": TARGET_P95_MS, "reached": worst["voronka"]["p95_ms"], "worst_query": worst["name"],
            "not_met": [r["name"] for r in filtered if r["voronka"]["p95_ms"] >= TARGET_P95_MS],
        }},
    }
