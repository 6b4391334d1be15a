"""What a bench run measures and for how long: the command line's flags, with full and --quick defaults."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

BENCHMARKS = ("leads", "latency", "outbox", "batch", "webhook", "search", "import", "distribution", "rescoring")
RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Options:
    quick: bool
    only: tuple[str, ...]
    warmup: float  # seconds before each closed-loop window
    duration: float  # seconds of each closed-loop window
    clients: tuple[int, ...]
    repeat: int  # write runs per point; the median one is reported
    profile: bool
    profile_seconds: float
    latency_rate: float  # leads/s, open loop
    latency_warmup: float
    latency_duration: float
    poll_interval: float  # how often the bench looks for leads in reporting's read model
    outbox_events: int
    batch_clients: tuple[int, ...]  # closed-loop clients of POST /v1/leads:batch (1,000 leads a request)
    webhook_clients: int
    webhook_drain_seconds: float  # at most this long measuring the inbound worker on the backlog
    search_leads: int  # leads loaded into one workspace for the list/search latencies
    search_clients: int
    search_warmup: float
    search_duration: float  # seconds measured per query, per system
    pg_port: int
    results_dir: Path
    summary_only: bool


def parse(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks Voronka against a raw-PostgreSQL baseline; writes bench/results/.",
    )
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test, not numbers to quote)")
    parser.add_argument("--only", action="append", choices=BENCHMARKS, help="run only this benchmark (repeatable)")
    parser.add_argument("--warmup", type=float,
                        help="seconds of warm-up before each write run: leads, batch, webhook (2; quick 0.5)")
    parser.add_argument("--duration", type=float,
                        help="seconds measured per write run: leads, batch, webhook (10; quick 3)")
    parser.add_argument("--clients", help="comma-separated concurrency levels (1,16,64)")
    parser.add_argument("--repeat", type=int,
                        help="write runs per concurrency level, alternating with the baseline; the median is "
                             "reported (3; quick 1): this machine's speed drifts by a third between runs")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy run")
    parser.add_argument("--profile-seconds", type=float, help="seconds py-spy samples leads (10; quick 3)")
    parser.add_argument("--rate", type=float, default=200.0, help="leads/s in the event-latency run (200)")
    parser.add_argument("--latency-duration", type=float, help="seconds of the event-latency run (15; quick 5)")
    parser.add_argument("--outbox-events", type=int, help="events in the outbox-throughput run (20000; quick 5000)")
    parser.add_argument("--batch-clients", help="comma-separated concurrency levels of the batch run (1,4)")
    parser.add_argument("--webhook-clients", type=int, default=16, help="clients of the webhook ingest run (16)")
    parser.add_argument("--webhook-drain-seconds", type=float,
                        help="longest the inbound worker's backlog drain is measured (120; quick 20)")
    parser.add_argument("--search-leads", type=int,
                        help="leads loaded into one workspace for the search run (1000000; quick 50000)")
    parser.add_argument("--search-clients", type=int, default=4, help="concurrent clients per search query (4)")
    parser.add_argument("--search-duration", type=float, help="seconds measured per search query (5; quick 1.5)")
    parser.add_argument("--pg-port", type=int, default=54349, help="the bench's embedded PostgreSQL port (54349)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--summary-only", action="store_true",
                        help="rewrite summary.md from the JSON files; run nothing")
    args = parser.parse_args(argv)

    quick: bool = args.quick

    def pick(value: float | None, full: float, short: float) -> float:
        return value if value is not None else (short if quick else full)

    clients = tuple(int(c) for c in args.clients.split(",")) if args.clients else (1, 16, 64)
    return Options(
        quick=quick,
        only=tuple(args.only) if args.only else BENCHMARKS,
        warmup=pick(args.warmup, 2.0, 0.5),
        duration=pick(args.duration, 10.0, 3.0),
        clients=clients,
        repeat=max(1, int(pick(args.repeat, 3, 1))),
        profile=not args.no_profile,
        profile_seconds=pick(args.profile_seconds, 10.0, 3.0),
        latency_rate=args.rate,
        latency_warmup=pick(None, 3.0, 1.0),
        latency_duration=pick(args.latency_duration, 15.0, 5.0),
        poll_interval=0.01,
        outbox_events=int(pick(args.outbox_events, 20_000, 5_000)),
        batch_clients=tuple(int(c) for c in args.batch_clients.split(",")) if args.batch_clients else (1, 4),
        webhook_clients=args.webhook_clients,
        webhook_drain_seconds=pick(args.webhook_drain_seconds, 120.0, 20.0),
        search_leads=int(pick(args.search_leads, 1_000_000, 50_000)),
        search_clients=args.search_clients,
        search_warmup=pick(None, 1.0, 0.3),
        search_duration=pick(args.search_duration, 5.0, 1.5),
        pg_port=args.pg_port,
        results_dir=args.results_dir,
        summary_only=args.summary_only,
    )
