"""`python -m bench [--quick] [--only NAME]` (leads, latency, outbox, batch, webhook, search, import,
distribution, rescoring): start PostgreSQL and the services, measure, stop.

Each benchmark gets a fresh database cloned from a migrated template, starts the processes it needs and stops
them when done; PostgreSQL is stopped at the end if the bench started it. Results go to bench/results/.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop

from bench import (
    batch_ingest,
    distribution,
    event_latency,
    import_csv,
    lead_search,
    leads_write,
    outbox_throughput,
    report,
    rescoring,
    webhook_ingest,
)
from bench.machine import code_state, machine_info
from bench.options import Options, parse
from bench.stack import LOG_DIR, ROOT, BenchPostgres, reset_logs

Benchmark = Callable[[BenchPostgres, Options], Awaitable[dict[str, Any]]]
BENCHMARKS: dict[str, Benchmark] = {
    "leads": leads_write.run,
    "latency": event_latency.run,
    "outbox": outbox_throughput.run,
    "batch": batch_ingest.run,
    "webhook": webhook_ingest.run,
    "search": lead_search.run,
    "import": import_csv.run,
    "distribution": distribution.run,
    "rescoring": rescoring.run,
}


def _say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


async def _run(options: Options, postgres: BenchPostgres) -> None:
    _say("migrating the template database")
    await postgres.prepare_template()
    machine = machine_info(await postgres.server_version(), embedded_postgres=postgres.embedded)
    for name in options.only:
        _say(f"running {name}")
        started = time.monotonic()
        code_before = code_state(ROOT)
        result = await BENCHMARKS[name](postgres, options)
        code_after = code_state(ROOT)
        result["code"] = code_before
        if code_after["services_sha256"] != code_before["services_sha256"]:
            result["code"]["changed_during_run_to"] = code_after
            _say(f"warning: the service code changed while {name} ran; its processes may have run different code")
        result["quick"] = options.quick
        result["machine"] = {**machine, "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
        path = report.write_result(options.results_dir, name, result)
        _say(f"{name} done in {time.monotonic() - started:.0f}s -> {path}")


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    if options.summary_only:
        _say(f"summary: {report.write_summary(options.results_dir)}")
        return 0
    reset_logs()
    _say(f"process logs in {LOG_DIR}")
    postgres = BenchPostgres(os.environ.get("DATABASE_URL"), options.pg_port)
    _say("starting PostgreSQL" if postgres.embedded else "using DATABASE_URL's server")
    postgres.start()
    try:
        # The generator shares two cores with the server: uvloop keeps its per-request cost down.
        uvloop.run(_run(options, postgres))
    finally:
        postgres.stop()
    summary = report.write_summary(options.results_dir)
    _say(f"summary: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
