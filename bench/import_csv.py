"""Benchmark 4: a 100,000-row CSV import, upload to done, beside a raw-PostgreSQL COPY of the same rows.

The file is what a Russian sales team exports from Excel: Windows-1251, ";" delimited, Cyrillic headers and
names, phone numbers in mixed formats (+7, 8 (9xx), bare digits), about 5% repeated emails (some in another
letter case), 20% of rows without a phone, and about 1% of rows the import must refuse (a broken email, a
number that is not a phone, a row with neither name nor contact). Leads runs as in production: its dispatcher
on and reporting applying the events the import publishes. The bench posts the file (multipart, with the
column mapping), polls GET /v1/imports/{id} every 100 ms until done, and notes when the events reached
reporting. The baseline is the floor: the same rows, parsed, COPYed into a plain table of text columns.

Beside it, in the bench's own process: what reading (csv_rows) and checking (intake.validate_lead) one row
costs in CPU, the part of the import that is Python per row. Then, with py-spy, a second, smaller import
drains under the profiler (not counted in the numbers) to show where the leads process spends its time.

`python -m bench.import_csv [--quick] [--rows N] [--no-profile]` runs it on its own and writes
results/import_csv.json; `section()` is its part of summary.md.
"""

# ruff: noqa: RUF001  (Cyrillic names and headers are the point of the file)
from __future__ import annotations

import argparse
import asyncio
import csv
import io
import itertools
import os
import random
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import psutil
import uvloop

from bench import profiling
from bench.cpu import CpuMeter
from bench.options import RESULTS_DIR, Options
from bench.stack import DEFAULT_PG_PORT, HOST, LOG_DIR, ROOT, BenchPostgres, Processes, Running, reset_logs
from services.common.auth import Role, issue_token
from services.common.settings import get_settings
from services.contracts import LeadCreatedV1

ROWS = 100_000
QUICK_ROWS = 20_000
PROFILE_ROWS = 20_000
TARGET_SECONDS = 30.0
POLL_SECONDS = 0.1
IMPORT_TIMEOUT_SECONDS = 600.0
DRAIN_TIMEOUT_SECONDS = 600.0
VALIDATION_SAMPLE = 10_000
DUPLICATE_SHARE = 0.05
INVALID_SHARE = 0.01

HEADER = ["ФИО", "Телефон", "E-mail", "Компания", "Должность", "utm_source"]
MAPPING = {"name": "ФИО", "phone": "Телефон", "email": "E-mail", "company": "Компания",
           "position": "Должность", "utm.source": "utm_source"}
FIRST = ["Иван", "Мария", "Алексей", "Ольга", "Дмитрий", "Анна", "Сергей", "Елена", "Павел", "Наталья",
         "Андрей", "Татьяна", "Михаил", "Юлия", "Николай", "Ксения"]
LAST = ["Иванов", "Петров", "Сидоров", "Смирнов", "Кузнецов", "Попов", "Соколов", "Лебедев", "Козлов",
        "Новиков", "Морозов", "Волков", "Фёдоров", "Орлов", "Зайцев", "Соловьёв"]
LATIN = {"Иван": "ivan", "Мария": "maria", "Алексей": "alexey", "Ольга": "olga", "Дмитрий": "dmitry",
         "Анна": "anna", "Сергей": "sergey", "Елена": "elena", "Павел": "pavel", "Наталья": "natalia",
         "Андрей": "andrey", "Татьяна": "tatiana", "Михаил": "mikhail", "Юлия": "yulia", "Николай": "nikolay",
         "Ксения": "ksenia"}
DOMAINS = ["example.com", "example.ru", "mail.example.org", "corp.example.net"]
POSITIONS = ["", "", "Директор", "Менеджер по закупкам", "Главный инженер", "Бухгалтер"]
UTM = ["", "yandex", "google", "vk", "telegram"]

BASELINE_TABLE = "bench_baseline.import_rows"
BASELINE_SQL = f"""
CREATE SCHEMA IF NOT EXISTS bench_baseline;
DROP TABLE IF EXISTS {BASELINE_TABLE};
CREATE TABLE {BASELINE_TABLE} (
    workspace_id uuid NOT NULL,
    id uuid NOT NULL,
    name text, phone text, email text, company text, position text, utm_source text,
    PRIMARY KEY (workspace_id, id)
);
"""


# ---- the file -----------------------------------------------------------------------------------------


def _phone(rng: random.Random, number: int) -> str:
    digits = f"9{(number * 7919) % 10**9:09d}"  # distinct per row, a Russian mobile's ten digits
    a, b, c, d = digits[:3], digits[3:6], digits[6:8], digits[8:]
    return rng.choice([
        f"+7 {a} {b}-{c}-{d}", f"8 ({a}) {b}-{c}-{d}", f"7{digits}", f"+7({a}){b}{c}{d}", f"8{digits}",
    ])


def generate_rows(count: int, seed: int = 4) -> list[list[str]]:
    """`count` rows of a realistic export, in a fixed order for a given seed."""
    rng = random.Random(seed)
    rows: list[list[str]] = []
    emails: list[str] = []
    for number in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        surname = last + "а" if first in ("Мария", "Ольга", "Анна", "Елена", "Наталья", "Татьяна", "Юлия",
                                          "Ксения") else last
        name = f"{surname} {first}"
        if emails and rng.random() < DUPLICATE_SHARE:
            email = rng.choice(emails)
            email = email.upper() if rng.random() < 0.3 else email  # the same address, another case
        else:
            email = f"{LATIN[first]}.{number}@{rng.choice(DOMAINS)}"
            emails.append(email)
        phone = _phone(rng, number) if rng.random() < 0.8 else ""
        company = f"ООО \"Ромашка-{number % 997}\"" if rng.random() < 0.4 else ""
        row = [name, phone, email, company, rng.choice(POSITIONS), rng.choice(UTM)]
        roll = rng.random()
        if roll < INVALID_SHARE / 3:
            row[2] = email.split("@")[0] + "@"  # a broken email
        elif roll < 2 * INVALID_SHARE / 3:
            row[1] = "12-34"  # not a phone number
        elif roll < INVALID_SHARE:
            row[0], row[1], row[2] = "", "", ""  # nobody to call or write to
            row[3] = row[3] or "ООО \"Без контактов\""  # (a fully empty row is skipped, not rejected)
        rows.append(row)
    return rows


def csv_file(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    return out.getvalue().encode("cp1251")


# ---- what one row costs in Python ---------------------------------------------------------------------


def validation_cost(content: bytes, sample: int) -> dict[str, float]:
    """CPU microseconds per row of the import's per-row steps, measured in this process on `sample` rows."""
    from services.leads import csv_rows, intake
    from services.leads.mapping import MappingError

    settings = intake.CaptureSettings(default_region="RU")
    started = time.process_time()
    text, _ = csv_rows.decode(content, "auto")
    header, rows_iter = csv_rows.read_rows(text, ";")
    rows = [cells for _, cells in itertools.islice(rows_iter, sample)]
    read = time.process_time() - started
    started = time.process_time()
    raws = []
    for cells in rows:
        try:
            raws.append(csv_rows.row_to_raw(header, cells, MAPPING))
        except MappingError:
            continue
    mapped = time.process_time() - started
    started = time.process_time()
    for raw in raws:
        try:
            intake.validate_lead({**raw, "source": "bench", "channel": "cold_list"}, settings)
        except intake.InvalidLead:
            continue
    validated = time.process_time() - started
    n = len(rows)
    return {
        "rows": n,
        "decode_and_read_us": round(read * 1e6 / n, 1),
        "row_to_raw_us": round(mapped * 1e6 / n, 1),
        "validate_lead_us": round(validated * 1e6 / max(1, len(raws)), 1),
        "total_us": round((read + mapped) * 1e6 / n + validated * 1e6 / max(1, len(raws)), 1),
    }


# ---- the import -----------------------------------------------------------------------------------------


@dataclass
class ImportRun:
    import_id: str
    upload_seconds: float
    done_seconds: float
    job: dict[str, Any]
    samples: list[tuple[float, int]]
    cpu: dict[str, float]


def _client(leads: Running) -> httpx.AsyncClient:
    token = issue_token(get_settings(), workspace_id=uuid.uuid4(), user_id=uuid.uuid4(), role=Role.admin)
    return httpx.AsyncClient(base_url=f"http://{HOST}:{leads.port}", headers={"Authorization": f"Bearer {token}"},
                             timeout=120)


def _count_checkers(meter: CpuMeter, leads_pid: int) -> None:
    """Adds the leads worker's checker processes (started at its first import) to the CPU meter: a process
    born inside the window counts from zero."""
    try:
        children = psutil.Process(leads_pid).children()
    except psutil.NoSuchProcess:
        return
    checkers = [c for c in children if "spawn_main" in " ".join(c.cmdline())]
    for number, child in enumerate(checkers, start=1):
        meter.pids.setdefault(f"leads checker {number}" if len(checkers) > 1 else "leads checker", child.pid)


async def import_file(client: httpx.AsyncClient, content: bytes, meter: CpuMeter, leads_pid: int) -> ImportRun:
    """Uploads the file and polls its progress until it is done; times from the start of the upload."""
    start = meter.snapshot()
    started = time.monotonic()
    response = await client.post(
        "/v1/imports",
        files={"file": ("leads.csv", content, "text/csv")},
        data={"mapping": orjson.dumps(MAPPING).decode(), "source": "bench", "tags": "bench"},
    )
    upload_seconds = time.monotonic() - started
    if response.status_code != 202:
        raise RuntimeError(f"upload refused: {response.status_code} {response.text}")
    import_id = response.json()["id"]
    samples: list[tuple[float, int]] = []
    while True:
        job = (await client.get(f"/v1/imports/{import_id}")).json()
        now = time.monotonic() - started
        _count_checkers(meter, leads_pid)
        samples.append((now, job["rows_done"]))
        if job["status"] in ("done", "failed"):
            return ImportRun(import_id, upload_seconds, now, job, samples, CpuMeter.cores(start, meter.snapshot()))
        if now > IMPORT_TIMEOUT_SECONDS:
            raise TimeoutError(f"import not done after {now:.0f}s: {job}")
        await asyncio.sleep(POLL_SECONDS)


UNDELIVERED_CREATED = """
SELECT count(*) FROM leads.outbox o
WHERE o.type = $1
  AND NOT EXISTS (SELECT 1 FROM reporting.inbox i WHERE i.workspace_id = o.workspace_id AND i.event_id = o.id)
"""


async def wait_delivered(conn: asyncpg.Connection) -> float | None:
    """Seconds until reporting applied every lead.created the import published (the only event it subscribes
    to: lead.merged stays in the outbox for replay); None if that took longer than the timeout."""
    started = time.monotonic()
    while await conn.fetchval(UNDELIVERED_CREATED, LeadCreatedV1.type()) > 0:
        if time.monotonic() - started > DRAIN_TIMEOUT_SECONDS:
            return None
        await asyncio.sleep(0.2)
    return time.monotonic() - started


async def baseline_copy(conn: asyncpg.Connection, content: bytes) -> dict[str, float]:
    """The same rows, parsed from the same file, COPYed into a plain table: what storing them costs at least."""
    await conn.execute(BASELINE_SQL)
    started = time.monotonic()
    reader = csv.reader(io.StringIO(content.decode("cp1251"), newline=""), delimiter=";")
    next(reader)
    workspace = uuid.uuid4()
    records = [(workspace, uuid.uuid4(), *row) for row in reader]
    parsed = time.monotonic() - started
    started = time.monotonic()
    await conn.copy_records_to_table(
        "import_rows", schema_name="bench_baseline", records=records,
        columns=["workspace_id", "id", "name", "phone", "email", "company", "position", "utm_source"],
    )
    copied = time.monotonic() - started
    return {"parse_seconds": round(parsed, 3), "copy_seconds": round(copied, 3),
            "rows_per_s": round(len(records) / copied, 1) if copied else float("nan")}


# Where the leads process spends an import. Rows are checked in the worker's checker process, which the
# profile does not sample (its cost is the "Python CPU per row" line); the first rule only fires with
# check_in="thread".
IMPORT_ACTIVITIES: tuple[profiling.Rule, ...] = (
    ("checking rows in a thread (csv_rows, mapping, validate_lead)", profiling.ANY_FRAME, ("check_rows (",)),
    ("capture (dedupe, inserts, events)", profiling.ANY_FRAME, ("capture (",)),
    ("outbox dispatcher (sequencer, courier, httpx)", profiling.ANY_FRAME,
     ("services/common/dispatcher.py", "/httpx/", "/httpcore/", "/h11/", "_process_notification (")),
    ("upload: multipart, counting rows", profiling.ANY_FRAME, ("post_import (", "inspect_upload (", "/multipart/")),
    ("hand-off to the checker process (pickling, executor threads, mostly waiting)", profiling.ANY_FRAME,
     ("/concurrent/futures/", "/multiprocessing/", "threading.py", "BaseModel.__setstate__")),
    ("import bookkeeping (taking rows off the file, chunk transaction, rejections)", profiling.ANY_FRAME,
     ("ImportWorker.", "_add_rejections (")),
    (profiling.EVENT_LOOP, profiling.LEAF, ("asyncio/runners.py", "asyncio/base_events.py", "selectors.py")),
)


async def _profile_import(leads: Running, client: httpx.AsyncClient, meter: CpuMeter) -> dict[str, Any]:
    raw = LOG_DIR / "import-profile.txt"
    content = csv_file(generate_rows(PROFILE_ROWS, seed=5))
    recording = profiling.record(leads.pid, raw=raw, seconds=IMPORT_TIMEOUT_SECONDS, rate=100,
                                 log=LOG_DIR / "py-spy.log")
    try:
        profiled = await import_file(client, content, meter, leads.pid)
    finally:
        problems = await asyncio.to_thread(recording.stop)
    if not raw.exists():
        return {"problems": problems or ["py-spy did not start"]}
    summary = profiling.summarize(raw, seconds=recording.seconds, rate=recording.rate, rules=IMPORT_ACTIVITIES)
    return {"rows": PROFILE_ROWS, "seconds_under_profiler": round(profiled.done_seconds, 3), "problems": problems,
            **{k: v for k, v in summary.items() if k in ("samples", "busy_share", "by_activity", "top_self")}}


async def run(postgres: BenchPostgres, options: Options, rows: int | None = None) -> dict[str, Any]:
    count = rows or (QUICK_ROWS if options.quick else ROWS)
    generated = time.monotonic()
    content = csv_file(generate_rows(count))
    generated = time.monotonic() - generated
    cost = await asyncio.to_thread(validation_cost, content, min(VALIDATION_SAMPLE, count))
    admin_url = await postgres.fresh_database()
    conn = await asyncpg.connect(admin_url)
    try:
        async with Processes(admin_url) as processes:
            reporting = await processes.start_service("reporting")
            leads = await processes.start_service("leads")
            meter = CpuMeter({"leads": leads.pid, "reporting": reporting.pid}, postmaster_pid=postgres.postmaster_pid())
            async with _client(leads) as client:
                settings = await client.patch("/v1/lead-settings", json={"default_region": "RU"})
                settings.raise_for_status()
                measured = await import_file(client, content, meter, leads.pid)
                delivered = await wait_delivered(conn)
                drained_after = measured.done_seconds + delivered if delivered is not None else None
                leads_count = await conn.fetchval("SELECT count(*) FROM leads.leads")
                baseline = await baseline_copy(conn, content)
                profile = (await _profile_import(leads, client, meter)
                           if options.profile and profiling.py_spy() else None)
    finally:
        await conn.close()
    return _result(count, len(content), generated, measured, drained_after, leads_count, baseline, cost, profile)


def _result(
    count: int, size: int, generated: float, measured: ImportRun, drained_after: float | None, leads_count: int,
    baseline: dict[str, float], cost: dict[str, float], profile: dict[str, Any] | None,
) -> dict[str, Any]:
    job = measured.job
    rate = count / measured.done_seconds
    first = next((t for t, done in measured.samples if done > 0), None)
    return {
        "benchmark": "import_csv",
        "settings": {"rows": count, "file_bytes": size, "encoding": "cp1251", "delimiter": ";",
                     "duplicate_share": DUPLICATE_SHARE, "invalid_share": INVALID_SHARE, "poll_ms": POLL_SECONDS * 1000,
                     "generate_seconds": round(generated, 3)},
        "upload_seconds": round(measured.upload_seconds, 3),
        "first_progress_after_s": first,
        "done_after_s": round(measured.done_seconds, 3),
        "rows_per_s": round(rate, 1),
        "events_delivered_after_s": round(drained_after, 3) if drained_after is not None else None,
        "counts": {k: job[k] for k in ("status", "total_rows", "rows_done", "created", "merged", "rejected")},
        "leads_in_database": leads_count,
        "accounted_for": job["created"] + job["merged"] + job["rejected"] == job["total_rows"] == count,
        "baseline_copy": baseline,
        "ratio_to_copy": (round(measured.done_seconds / baseline["copy_seconds"], 1)
                          if baseline["copy_seconds"] else None),
        "per_row_cpu_us": cost,
        "cpu_cores": measured.cpu,
        # Enough of the curve to plot, not every 100 ms sample.
        "progress": [{"t": round(t, 2), "rows_done": done}
                     for t, done in measured.samples[:: max(1, len(measured.samples) // 60)]],
        "profile": profile,
        "targets": {"seconds": {"target": TARGET_SECONDS, "reached": round(measured.done_seconds, 3)}},
    }


# ---- summary.md -----------------------------------------------------------------------------------------


def section(result: dict[str, Any]) -> list[str]:
    """This benchmark's part of summary.md."""
    s, counts, base, cost = result["settings"], result["counts"], result["baseline_copy"], result["per_row_cpu_us"]
    met = result["done_after_s"] < TARGET_SECONDS and result["accounted_for"]
    lines = [
        "## CSV import (`POST /v1/imports`)",
        "",
        f"{s['rows']:,} rows ({s['file_bytes'] / 1e6:.1f} MB, {s['encoding']}, \"{s['delimiter']}\", "
        f"~{s['duplicate_share']:.0%} repeated emails, ~{s['invalid_share']:.0%} invalid rows), upload to done. "
        f"Target: under {TARGET_SECONDS:.0f} s — {'**met**' if met else '**not met**'}.",
        "",
        "| | seconds | rows/s |",
        "|---|---|---|",
        f"| Voronka: upload + background import | {result['done_after_s']:.1f} | {result['rows_per_s']:,.0f} |",
        f"| of which the upload (read, count, store) | {result['upload_seconds']:.1f} | |",
        f"| baseline: COPY of the same rows into a plain table | {base['copy_seconds']:.2f} "
        f"| {base['rows_per_s']:,.0f} |",
        "",
        f"Ratio to the COPY: {result['ratio_to_copy']}x. Outcome: {counts['created']:,} created, "
        f"{counts['merged']:,} merged, {counts['rejected']:,} rejected of {counts['total_rows']:,} "
        f"({'all accounted for' if result['accounted_for'] else '**rows missing**'}); "
        + (f"reporting had applied every lead.created {delivered:.1f} s after the upload started."
           if (delivered := result["events_delivered_after_s"]) is not None
           else f"**reporting had not applied every lead.created after {DRAIN_TIMEOUT_SECONDS:.0f} s**."),
        "",
        f"Python CPU per row, outside the service: reading {cost['decode_and_read_us']} µs, mapping "
        f"{cost['row_to_raw_us']} µs, validate_lead (pydantic, email, E.164 phone) {cost['validate_lead_us']} µs.",
        "",
        "CPU (cores): " + ", ".join(f"{k} {v}" for k, v in result["cpu_cores"].items()) + ".",
        "",
    ]
    profile = result.get("profile")
    if profile and profile.get("by_activity"):
        parts = ", ".join(f"{a['name']} {a['share']:.0%}" for a in profile["by_activity"][:5])
        lines += [f"Leads while importing (py-spy, {profile['rows']:,} rows): {parts}.", ""]
    return lines


# ---- on its own -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    from bench.machine import code_state, machine_info
    from bench.options import parse

    parser = argparse.ArgumentParser(prog="python -m bench.import_csv", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rows", type=int)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--pg-port", type=int, default=DEFAULT_PG_PORT)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    options = parse([*(["--quick"] if args.quick else []), *(["--no-profile"] if args.no_profile else []),
                     "--pg-port", str(args.pg_port)])
    reset_logs()
    postgres = BenchPostgres(os.environ.get("DATABASE_URL"), options.pg_port)
    postgres.start()

    async def measure() -> dict[str, Any]:
        await postgres.prepare_template()
        machine = machine_info(await postgres.server_version(), embedded_postgres=postgres.embedded)
        code = code_state(ROOT)
        result = await run(postgres, options, args.rows)
        return {**result, "code": code, "quick": options.quick,
                "machine": {**machine, "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}}

    try:
        result = uvloop.run(measure())
    finally:
        postgres.stop()
    args.results_dir.mkdir(parents=True, exist_ok=True)
    path = args.results_dir / "import_csv.json"
    path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    print("\n".join(section(result)))
    print(f"bench: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
