"""Writing results: one JSON file per benchmark, and bench/results/summary.md built from all of them.

The summary is regenerated from whatever JSON files exist, so `--only outbox` refreshes its own section and
keeps the others (each section says when and how its numbers were measured).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

# CPU used by processes outside the bench above which a run is flagged as measured on a busy machine.
BUSY_MACHINE_CORES = 0.2
FILES = {
    "leads": "leads_write.json", "latency": "event_latency.json", "outbox": "outbox_throughput.json",
    "batch": "batch_ingest.json", "webhook": "webhook_ingest.json", "search": "lead_search.json",
    "import": "import_csv.json", "distribution": "distribution.json", "rescoring": "rescoring.json",
}


def write_result(results_dir: Path, name: str, result: dict[str, Any]) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / FILES[name]
    path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    return path


def _load(results_dir: Path, name: str) -> dict[str, Any] | None:
    path = results_dir / FILES[name]
    if not path.exists():
        return None
    loaded: dict[str, Any] = orjson.loads(path.read_bytes())
    return loaded


# -- formatting ---------------------------------------------------------------------------------------


def _n(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _rps(run: dict[str, Any]) -> str:
    """Throughput, with the range over the repetitions when there were several."""
    repeats = [r["throughput_rps"] for r in run.get("repeats", [])]
    if len(repeats) < 2:
        return _n(run["throughput_rps"], 0)
    return f"{_n(run['throughput_rps'], 0)} ({_n(min(repeats), 0)}-{_n(max(repeats), 0)})"


def _verdict(met: bool) -> str:
    return "**met**" if met else "**not met**"


def _other(cores: float | None) -> str:
    """CPU used outside the bench; flagged when it is enough to skew the run."""
    text = _n(cores, 2)
    return f"**{text}** (busy machine)" if cores is not None and cores >= BUSY_MACHINE_CORES else text


def _cpu_per_request(cores: float | None, rps: float) -> str:
    return _n(cores * 1e6 / rps, 0) if cores is not None and rps else "-"


def _code(code: dict[str, Any]) -> str:
    modified = f" + {len(code['modified'])} modified files" if code.get("modified") else ""
    return f"commit {code.get('commit') or '?'}{modified} (services tree {code.get('services_sha256', '?')})"


def _measured(result: dict[str, Any]) -> str:
    machine = result.get("machine", {})
    quick = " — **quick run: a smoke test, not numbers to quote**" if result.get("quick") else ""
    code = result.get("code")
    text = (f"_Measured {machine.get('measured_at', '?')} on {_code(code) if code else 'unrecorded code'}, "
            f"load average at start {machine.get('load_average_at_start', '?')}{quick}._")
    if code and code.get("changed_during_run_to"):
        text += (f" **The service code changed during this benchmark** (to "
                 f"{_code(code['changed_during_run_to'])}): processes started later may have run the new code.")
    return text


# -- sections -----------------------------------------------------------------------------------------


def _leads_section(result: dict[str, Any]) -> list[str]:
    runs = {(r["system"], r["clients"]): r for r in result["runs"]}
    ratios = {r["clients"]: r for r in result["ratios"]}
    lines = ["## 1. Writing leads: `POST /v1/leads` vs the raw-PostgreSQL baseline", "", _measured(result), ""]
    settings = result["settings"]
    lines += [
        f"Closed loop: each client on its own keep-alive connection sends its next request when the previous one is "
        f"answered; {settings['warmup_s']:g} s warm-up, then {settings['duration_s']:g} s measured"
        + (f", {settings['repeat']} times alternating with the baseline: the run with the median throughput is shown, "
           "the range of all in brackets" if settings.get("repeat", 1) > 1 else "")
        + ". Leads runs with "
        "its dispatcher on and reporting applying the events, as deployed. The baseline "
        "(`bench/baseline_app.py`) is bare FastAPI + asyncpg in one uvicorn process doing the same two inserts in "
        "one transaction, without auth, middleware, domain code or NOTIFY. Ratio = Voronka / baseline.",
        "",
    ]
    rows = []
    for clients in settings["clients"]:
        v, b, r = runs[("voronka", clients)], runs[("baseline", clients)], ratios[clients]
        rows.append([
            str(clients), _rps(v), _n(v["p50_ms"], 2), _n(v["p99_ms"], 2), str(v["errors"]),
            _rps(b), _n(b["p50_ms"], 2), _n(b["p99_ms"], 2), str(b["errors"]),
            _n(r["throughput"], 2), _n(r["p50"], 2), _n(r["p99"], 2),
        ])
    lines += _table(
        ["clients", "Voronka req/s", "p50 ms", "p99 ms", "errors", "baseline req/s", "p50 ms", "p99 ms", "errors",
         "throughput ratio", "p50 ratio", "p99 ratio"],
        rows,
    )
    lines += ["CPU used during each measured window, in cores (the machine has "
              f"{result.get('machine', {}).get('cpu_count', '?')}), and CPU per request of the app process:", ""]
    cpu_rows = []
    extra = [result["dispatcher_off"]] if result.get("dispatcher_off") else []
    for run in [*result["runs"], *extra]:
        cpu = run["cpu_cores"]
        app = cpu.get("baseline") if run["system"] == "baseline" else cpu.get("leads")
        cpu_rows.append([
            run["system"], str(run["clients"]), _n(run["throughput_rps"], 0), _n(app, 2),
            _n(cpu.get("reporting"), 2) if run["system"] != "baseline" else "-", _n(cpu.get("postgres"), 2),
            _n(cpu.get("generator"), 2), _other(cpu.get("other")),
            _cpu_per_request(app, run["throughput_rps"]),
            _cpu_per_request(cpu.get("postgres"), run["throughput_rps"]),
        ])
    lines += _table(
        ["run", "clients", "req/s", "app process", "reporting", "postgres", "load generator", "other",
         "app CPU µs/req", "postgres CPU µs/req"],
        cpu_rows,
    )
    off = result.get("dispatcher_off")
    if off:
        lines += [f"With the leads dispatcher off (16 clients): {_rps(off)} req/s, "
                  f"p50 {_n(off['p50_ms'], 2)} ms, p99 {_n(off['p99_ms'], 2)} ms, {off['errors']} errors.", ""]
    targets = result["targets"]
    rps, p99 = targets["throughput_rps_at_16"]["reached"], targets["p99_ms_at_16"]["reached"]
    if rps is not None and p99 is not None:
        met = rps >= targets["throughput_rps_at_16"]["target"] and p99 < targets["p99_ms_at_16"]["target"]
        lines += [f"Target: ≥ {targets['throughput_rps_at_16']['target']:,.0f} leads/s at 16 clients with p99 < "
                  f"{targets['p99_ms_at_16']['target']:g} ms. Reached: {_n(rps, 0)} leads/s, p99 {_n(p99, 1)} ms "
                  f"— {_verdict(met)}.", ""]
    return lines


def _latency_section(result: dict[str, Any]) -> list[str]:
    settings = result["settings"]
    lines = ["## 2. Event latency: lead committed → visible in reporting", "", _measured(result), ""]
    lines += [
        f"Open loop: {settings['rate_per_s']:g} leads/s for {settings['duration_s']:g} s (after "
        f"{settings['warmup_s']:g} s of warm-up in another workspace), achieved "
        f"{_n(result['achieved_rate_per_s'], 1)}/s, {result['post_errors']} failed POSTs.",
        "",
        "- **PostgreSQL clock** (headline): `reporting.inbox.handled_at - leads.outbox.occurred_at` per event. "
        "`occurred_at` is stamped by the leads process just before its transaction commits; `handled_at` is "
        "`now()` of the reporting transaction applying the event. One machine, one clock.",
        f"- **Client-observed**: from the POST's answer (after commit) to the first poll of "
        f"`reporting.lead_facts` that saw the lead; polled every {settings['poll_interval_ms']:g} ms, so an upper "
        "bound at most one poll interval high.",
        "",
    ]
    pg, seen, post = result["pg_clock"], result["client_observed"], result["post_latency"]
    lines += _table(
        ["measure", "events", "p50 ms", "p90 ms", "p99 ms", "max ms"],
        [
            ["PostgreSQL clock", str(pg["events"]), _n(pg["p50_ms"]), _n(pg["p90_ms"]), _n(pg["p99_ms"]),
             _n(pg["max_ms"])],
            [f"client-observed ({seen['missing']} never seen)", str(seen["events"]), _n(seen["p50_ms"]),
             _n(seen["p90_ms"]), _n(seen["p99_ms"]), _n(seen["max_ms"])],
            ["POST /v1/leads itself", str(result["leads_posted"] - result["post_errors"]), _n(post["p50_ms"]),
             _n(post["p90_ms"]), _n(post["p99_ms"]), _n(post["max_ms"])],
        ],
    )
    cpu = result["cpu_cores"]
    lines += [f"CPU (cores): leads {_n(cpu.get('leads'), 2)}, reporting {_n(cpu.get('reporting'), 2)}, "
              f"postgres {_n(cpu.get('postgres'), 2)}, generator {_n(cpu.get('generator'), 2)}, "
              f"other {_n(cpu.get('other'), 2)}.", ""]
    profile = result.get("profile")
    if profile and profile.get("samples"):
        lines += [f"Where the leads process's CPU goes at this rate (a further {settings['rate_per_s']:g} leads/s run, "
                  f"not counted above, under py-spy at {profile['rate']} Hz; Python on the CPU "
                  f"{profile['busy_share']:.0%} of the time):", ""]
        lines += _activity_table(profile)
    target = result["targets"]["p99_ms"]
    if target["reached"] is not None:
        lines += [f"Target: p99 < {target['target']:g} ms. Reached: {_n(target['reached'])} ms — "
                  f"{_verdict(target['reached'] < target['target'])}.", ""]
    return lines


def _outbox_section(result: dict[str, Any]) -> list[str]:
    lines = ["## 3. Outbox throughput", "", _measured(result), ""]
    lines += [
        f"{result['settings']['events']:,} `lead.created` events written straight into `leads.outbox` (as "
        "`publish()` writes them) while leads was down and reporting up; then leads starts and its dispatcher "
        "sequences and delivers the backlog (batches of `VORONKA_DISPATCHER_BATCH_SIZE`). Both ends polled every "
        f"{result['settings']['poll_ms']:g} ms. Steady rate = events applied between the first poll that saw "
        "applied events and the one that saw all of them, per second.",
        "",
    ]
    cpu = result["cpu_cores"]
    lines += _table(
        ["events", "steady events/s", "events/s (PostgreSQL clock)", "events/s incl. start-up", "leads ready",
         "first applied", "all sequenced", "all applied", "batches"],
        [[f"{result['settings']['events']:,}", _n(result["events_per_s"], 0), _n(result["events_per_s_pg_clock"], 0),
          _n(result["events_per_s_including_start"], 0), f"{_n(result['leads_ready_after_s'], 2)} s",
          f"{_n(result['first_applied_after_s'], 2)} s", f"{_n(result['all_sequenced_after_s'], 2)} s",
          f"{_n(result['all_applied_after_s'], 2)} s", str(result["delivery_batches"])]],
    )
    lines += [f"CPU while draining (cores): leads {_n(cpu.get('leads'), 2)}, reporting {_n(cpu.get('reporting'), 2)}, "
              f"postgres {_n(cpu.get('postgres'), 2)}, other {_n(cpu.get('other'), 2)}.", ""]
    profile = result.get("reporting_profile")
    if profile and profile.get("samples"):
        lines += [f"Where reporting's CPU goes while applying (a second backlog of {profile['events']:,} events, not "
                  f"counted above, drained in {_n(profile['seconds'], 2)} s under py-spy at {profile['rate']} Hz; "
                  f"Python on the CPU {profile['busy_share']:.0%} of the time; `REPORTING_ACTIVITIES` in "
                  "`bench/profiling.py`):", ""]
        lines += _activity_table(profile)
    target = result["targets"]["events_per_s"]
    lines += [f"Target: ≥ {target['target']:,.0f} events/s. Reached: {_n(target['reached'], 0)} events/s — "
              f"{_verdict(target['reached'] >= target['target'])}.", ""]
    return lines


def _activity_table(profile: dict[str, Any]) -> list[str]:
    activities = profile.get("by_activity", [])
    return _table(["activity", "share of samples"], [[a["name"], f"{a['share']:.1%}"] for a in activities])


def _profile_section(result: dict[str, Any]) -> list[str]:
    profile = result.get("profile")
    if not profile or not profile.get("samples"):
        return []
    run = profile["run"]
    lines = ["## 4. Where the leads process spends its CPU (py-spy, 16 clients)", ""]
    lines += [
        f"Two py-spy samplers ({profile.get('rate', 50)} Hz each, pausing the process for each sample so that "
        "asyncio stacks come out whole) watched the leads process during a separate 16-client run "
        f"({_n(run['throughput_rps'], 0)} req/s, p99 {_n(run['p99_ms'], 1)} ms under sampling; the pauses cost "
        "throughput, compare with the unsampled runs above). Python code was on the CPU in "
        f"{profile['busy_share']:.0%} of the sampled time. "
        "Flame graph: "
        f"[{profile['svg']}]({profile['svg']}).",
        "",
        "What the process was doing, by the frames on each sampled stack (`LEADS_ACTIVITIES` in `bench/profiling.py`: "
        "the first matching rule wins, so e.g. asyncpg time under `publish` counts as the outbox insert):",
        "",
    ]
    lines += _activity_table(profile)
    lines += ["Self time by component (the code running when sampled; C extensions count as their Python caller):", ""]
    lines += _table(["component", "share of samples"],
                    [[c["name"], f"{c['share']:.1%}"] for c in profile["by_component"]])
    lines += ["Top functions by self time:", ""]
    lines += _table(["function", "self"], [[f"`{f['name']}`", f"{f['share']:.1%}"] for f in profile["top_self"]])
    lines += ["Top functions by inclusive time (the frames that start the process and run the loop left out):", ""]
    lines += _table(["function", "inclusive"],
                    [[f"`{f['name']}`", f"{f['share']:.1%}"] for f in profile["top_inclusive"]])
    return lines


def _limits_section(leads: dict[str, Any] | None, latency: dict[str, Any] | None,
                    outbox: dict[str, Any] | None) -> list[str]:
    """What limits throughput, read off the CPU columns and the profile."""
    lines = ["## What limits throughput", ""]
    if leads:
        for run in leads["runs"]:
            if run["system"] != "voronka" or run["clients"] != 16:
                continue
            cpu = run["cpu_cores"]
            base = next(r for r in leads["runs"] if r["system"] == "baseline" and r["clients"] == 16)
            app, base_app = cpu.get("leads", 0.0), base["cpu_cores"].get("baseline", 0.0)
            bound = ("so it is CPU-bound: one uvicorn worker can use one core"
                     if app >= 0.85 else "so it is not CPU-bound; it waits (on PostgreSQL, or on the pool)")
            lines.append(
                f"- **Writes**: at 16 clients the leads process used {app:.2f} cores, {bound}. It spends "
                f"{_cpu_per_request(app, run['throughput_rps'])} µs of CPU per lead against the baseline's "
                f"{_cpu_per_request(base_app, base['throughput_rps'])} µs; PostgreSQL used "
                f"{cpu.get('postgres', 0):.2f} cores, reporting {cpu.get('reporting', 0):.2f}, the load generator "
                f"{cpu.get('generator', 0):.2f} and everything else {cpu.get('other', 0):.2f}."
            )
        profile = leads.get("profile")
        if profile and profile.get("samples"):
            parts = ", ".join(f"{a['name']} {a['share']:.0%}" for a in profile.get("by_activity", [])[:6])
            lines.append(f"- **Leads at 16 clients** (profile): {parts}.")
        off = leads.get("dispatcher_off")
        at_16 = next((r for r in leads["runs"] if r["system"] == "voronka" and r["clients"] == 16), None)
        if off and at_16:
            lines.append(f"- **Dispatcher cost**: with the dispatcher off leads serves {_n(off['throughput_rps'], 0)} "
                         f"req/s at 16 clients vs {_n(at_16['throughput_rps'], 0)} with it on.")
    if latency:
        pg = latency["pg_clock"]
        cpu = latency["cpu_cores"]
        rate = latency["achieved_rate_per_s"]
        lines.append(f"- **Event latency**: p50 {_n(pg['p50_ms'])} ms, p99 {_n(pg['p99_ms'])} ms at "
                     f"{latency['settings']['rate_per_s']:g} leads/s (woken in-process after each commit). At that "
                     f"rate leads used {cpu.get('leads', 0):.2f} cores ({_cpu_per_request(cpu.get('leads'), rate)} µs "
                     f"per lead) and reporting {cpu.get('reporting', 0):.2f} "
                     f"({_cpu_per_request(cpu.get('reporting'), rate)} µs per event).")
        profile = latency.get("profile")
        if profile and profile.get("by_activity"):
            parts = ", ".join(f"{a['name']} {a['share']:.0%}" for a in profile["by_activity"][:4])
            lines.append(f"- **Leads at {latency['settings']['rate_per_s']:g} leads/s** (profile): {parts}.")
    if outbox:
        cpu = outbox["cpu_cores"]
        busiest = max(("leads", "reporting", "postgres"), key=lambda k: cpu.get(k, 0.0))
        lines.append(f"- **Outbox**: {_n(outbox['events_per_s'], 0)} events/s; while draining leads used "
                     f"{cpu.get('leads', 0):.2f} cores, reporting {cpu.get('reporting', 0):.2f}, PostgreSQL "
                     f"{cpu.get('postgres', 0):.2f}: the busiest is {busiest}. Delivery is one batch at a time "
                     "(fetch, POST, apply, advance), so it is bound by that round trip, not by one saturated core.")
        profile = outbox.get("reporting_profile")
        if profile and profile.get("by_activity"):
            parts = ", ".join(f"{a['name']} {a['share']:.0%}" for a in profile["by_activity"][:4])
            lines.append(f"- **Reporting while applying** (profile): {parts}.")
    return [*lines, ""]


def _cpu_per_item(cores: float | None, per_s: float | None) -> str:
    return _n(cores * 1e6 / per_s, 0) if cores is not None and per_s else "-"


def _ms(value: float | None, digits: int = 1) -> str:
    return _n(value, digits)


def _batch_section(result: dict[str, Any]) -> list[str]:
    settings = result["settings"]
    lines = ["## 5. Batch ingest: `POST /v1/leads:batch` vs raw asyncpg", "", _measured(result), ""]
    lines += [
        f"Each request carries {settings['batch_size']:,} leads: mostly new, "
        f"~{settings['duplicate_share']:.0%} repeats of earlier leads of the run (the same email in upper case, or "
        "the same phone in another national format), "
        "phones written as Russian forms send them (`8 916 123-45-67`, `+7 (916) ...`, `89161234567`...) with the "
        f"workspace's default region set to {settings['default_region']} via `PATCH /v1/lead-settings`. Closed loop, "
        f"{settings['warmup_s']:g} s warm-up then {settings['duration_s']:g} s measured"
        + (f", {settings['repeat']} times alternating with the baseline (median shown, range in brackets)"
           if settings.get("repeat", 1) > 1 else "")
        + "; each run in a fresh workspace. Leads runs as deployed (dispatcher on, reporting applying `lead.created`). "
        "The baseline is the database floor: the bench process on asyncpg inserting the same rows, already "
        "normalized, with one `INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING` per 1,000 into a plain "
        "table with a unique (workspace, email) index, one transaction each, as many connections as clients. "
        "Latencies are per request of 1,000 leads.",
        "",
    ]
    probe = result.get("probe")
    if probe:
        lines += [f"A first request, checked item by item: {probe['created']} created, {probe['merged']} merged, "
                  f"{probe['rejected']} rejected.", ""]
    runs = {(r["system"], r["clients"]): r for r in result["runs"]}
    ratios = {r["clients"]: r for r in result["ratios"]}
    rows = []
    for clients in settings["clients"]:
        v, b, r = runs[("voronka", clients)], runs[("baseline", clients)], ratios[clients]
        outcome = v.get("outcome", {})
        taken = outcome.get("created", 0) + outcome.get("merged", 0)
        merged = f"{outcome.get('merged', 0) / taken:.1%}" if taken else "-"
        rows.append([
            str(clients), _leads_rate(v), _ms(v["p50_ms"], 0), _ms(v["p99_ms"], 0), str(v["errors"]), merged,
            _leads_rate(b), _ms(b["p50_ms"], 0), _ms(b["p99_ms"], 0), str(b["errors"]), _n(r["throughput"], 2),
        ])
    lines += _table(["clients", "Voronka leads/s", "p50 ms", "p99 ms", "errors", "merged", "baseline leads/s",
                     "p50 ms", "p99 ms", "errors", "throughput ratio"], rows)
    lines += ["CPU during each measured window, in cores, and per lead (the baseline's inserts run in the load "
              "generator's process):", ""]
    cpu_rows = []
    extra = [result["dispatcher_off"]] if result.get("dispatcher_off") else []
    for run in [*result["runs"], *extra]:
        cpu = run["cpu_cores"]
        app = cpu.get("generator") if run["system"] == "baseline" else cpu.get("leads")
        cpu_rows.append([
            run["system"], str(run["clients"]), _n(run["leads_per_s"], 0), _n(app, 2),
            _n(cpu.get("reporting"), 2) if run["system"] != "baseline" else "-", _n(cpu.get("postgres"), 2),
            _n(cpu.get("generator"), 2), _other(cpu.get("other")), _cpu_per_item(app, run["leads_per_s"]),
            _cpu_per_item(cpu.get("postgres"), run["leads_per_s"]),
        ])
    lines += _table(["run", "clients", "leads/s", "app process", "reporting", "postgres", "load generator", "other",
                     "app CPU µs/lead", "postgres CPU µs/lead"], cpu_rows)
    delivered = [r.get("delivery_after_s") for r in result["runs"] if r.get("delivery_after_s") is not None]
    if delivered:
        lines += [f"After each Voronka run the bench waited for its events to reach reporting: {_n(min(delivered))}"
                  f"-{_n(max(delivered))} s after the load stopped.", ""]
    profile = result.get("profile")
    if profile and profile.get("samples"):
        run = profile["run"]
        lines += [f"Where the leads process's CPU goes (a further run at {run['clients']} clients, not counted above, "
                  f"under py-spy at {profile['rate']} Hz: {_n(run['leads_per_s'], 0)} leads/s while sampled; Python "
                  f"on the CPU {profile['busy_share']:.0%} of the time; `BATCH_ACTIVITIES` in "
                  "`bench/batch_ingest.py`" + (f"; flame graph [{profile['svg']}]({profile['svg']})"
                                               if profile.get("svg") else "") + "):", ""]
        lines += _activity_table(profile)
        lines += ["Top functions by self time:", ""]
        lines += _table(["function", "self"],
                        [[f"`{f['name']}`", f"{f['share']:.1%}"] for f in profile.get("top_self", [])[:10]])
    costs = result.get("python_cpu_us_per_lead")
    if costs:
        lines += ["What each lead's checks cost in Python, measured in the bench process on the same items "
                  "(CPU µs per lead):", ""]
        lines += _table(["step", "µs per lead"], [[f"`{k}`", _n(v, 1)] for k, v in costs.items()])
    target = result["targets"]["leads_per_s"]
    lines += [f"Target: ≥ {target['target']:,.0f} leads/s. Reached: {_n(target['reached'], 0)} leads/s (best, at "
              f"{target['at_clients']} clients) — {_verdict(target['reached'] >= target['target'])}.", ""]
    return lines


def _leads_rate(run: dict[str, Any]) -> str:
    repeats = [r["leads_per_s"] for r in run.get("repeats", []) if "leads_per_s" in r]
    if len(repeats) < 2:
        return _n(run["leads_per_s"], 0)
    return f"{_n(run['leads_per_s'], 0)} ({_n(min(repeats), 0)}-{_n(max(repeats), 0)})"


def _webhook_section(result: dict[str, Any]) -> list[str]:
    settings = result["settings"]
    lines = ["## 6. Inbound webhooks: `POST /v1/inbound/{source_id}` and the worker behind it", "",
             _measured(result), ""]
    lines += [
        f"{settings['clients']} closed-loop clients post a web form's JSON ({settings['body_bytes']} bytes: name, "
        "email, a phone in a national format, company, message, UTM tags) to a source created with "
        "`POST /v1/sources`, each request signed as Standard Webhooks senders sign (its own `webhook-id`, the current "
        "`webhook-timestamp`, HMAC-SHA256 with the source's `whsec_` secret); "
        f"{settings['warmup_s']:g} s warm-up then {settings['duration_s']:g} s measured"
        + (f", {settings['repeat']} times alternating with the baseline (median shown)"
           if settings.get("repeat", 1) > 1 else "")
        + ". The **202 path** runs with leads' workers off, so the process does nothing else: the answer comes "
        "after the raw request is committed. The baseline is `bench/baseline_app.py` (bare FastAPI + asyncpg, two "
        "inserts in one transaction): the 202 path does comparable database work (read the source, insert the raw "
        "request with `pg_notify`, one transaction) and on top of it authenticates the sender and reads the raw "
        "body. **As deployed** is the same load with the inbound worker on in the same process.",
        "",
    ]
    v, b = result["runs"][0], result["runs"][1]
    token, deployed = result.get("token_run"), result.get("deployed")
    rows = [["Voronka 202 path, signed", v], ["baseline_app (two inserts)", b]]
    if token:
        rows.append(["Voronka 202 path, `?token=`", token])
    if deployed:
        rows.append(["Voronka as deployed (worker on), signed", deployed])
    table = []
    for label, run in rows:
        cpu = run["cpu_cores"]
        app = cpu.get("baseline") if run is b else cpu.get("leads")
        table.append([label, _rps(run) if run is v or run is b else _n(run["throughput_rps"], 0),
                      _ms(run["p50_ms"], 2), _ms(run["p99_ms"], 2), str(run["errors"]), _n(app, 2),
                      _n(cpu.get("postgres"), 2), _other(cpu.get("other")),
                      _cpu_per_request(app, run["throughput_rps"])])
    lines += _table(["run", "req/s", "p50 ms", "p99 ms", "errors", "app CPU (cores)", "postgres", "other",
                     "app CPU µs/req"], table)
    r = result["ratios"]
    lines += [f"Ratio Voronka / baseline: throughput {_n(r['throughput'], 2)}, p50 {_n(r['p50'], 2)}, "
              f"p99 {_n(r['p99'], 2)}.", ""]
    drain = result.get("drain")
    if drain:
        cpu = drain["cpu_cores"]
        outcomes = ", ".join(f"{k} {v:,}" for k, v in drain.get("outcomes", {}).items())
        lines += [
            "**The worker on the backlog** the 202 runs left: leads restarted with its workers on and the bench "
            "polled the queue every 200 ms"
            + (f" (for at most {settings['drain_limit_s']:g} s)" if settings.get("drain_limit_s") else "") + ".",
            "",
        ]
        lines += _table(
            ["backlog", "processed", "seconds", "steady leads/s", "leads/s incl. start-up", "leads CPU",
             "reporting CPU", "postgres CPU", "other", "leads CPU µs/lead"],
            [[f"{drain['backlog']:,}", f"{drain['processed']:,}", _n(drain["seconds"], 1), _n(drain["leads_per_s"], 0),
              _n(drain["leads_per_s_including_start"], 0), _n(cpu.get("leads"), 2), _n(cpu.get("reporting"), 2),
              _n(cpu.get("postgres"), 2), _other(cpu.get("other")),
              _cpu_per_item(cpu.get("leads"), drain["leads_per_s"])]],
        )
        sessions = drain.get("sessions", {}).get("states")
        if sessions:
            lines += ["While it drained, leads' pooled connections were found (pg_stat_activity every 20 ms; the "
                      "share of samples per state, per connection): "
                      + ", ".join(f"{state} {share:.0%}" for state, share in sessions.items())
                      + ". `active` is PostgreSQL executing; `idle in transaction` is PostgreSQL waiting for the "
                      "leads process's next statement.", ""]
        lines += [f"Outcome of the requests so far: {outcomes}."
                  + (f" {drain['dropped_after_limit']:,} requests the worker had not reached within the limit were "
                     "dropped before the next step." if drain.get("dropped_after_limit") else ""), ""]
    if deployed and "received_per_s" in deployed:
        cleared = deployed.get("backlog_cleared_after_s")
        lines += [f"**As deployed**, in the measured window (PostgreSQL clock): {_n(deployed['received_per_s'], 0)} "
                  f"requests/s received and {_n(deployed['processed_per_s'], 0)}/s turned into leads; "
                  f"{deployed['backlog_at_end']:,} were still pending when the load stopped, and the queue was empty "
                  + (f"{_n(cleared, 1)} s later." if cleared is not None else "only after the limit (not measured)."),
                  ""]
    profile = result.get("profile")
    if profile and profile.get("samples"):
        run = profile["run"]
        lines += [f"Where the leads process's CPU goes as deployed (a further run, not counted above, under py-spy at "
                  f"{profile['rate']} Hz: {_n(run['throughput_rps'], 0)} req/s while sampled; Python on the CPU "
                  f"{profile['busy_share']:.0%} of the time; `WEBHOOK_ACTIVITIES` in `bench/webhook_ingest.py`):", ""]
        lines += _activity_table(profile)
    worker = result.get("worker_profile")
    if worker and worker.get("samples"):
        lines += [f"Where the worker's time goes draining on its own (a further backlog of {worker['backlog']:,}, "
                  f"{worker['processed_while_sampled']:,} processed in the {worker['seconds']:g} s under py-spy at "
                  f"{worker['rate']} Hz; Python on the CPU {worker['busy_share']:.0%} of the time):", ""]
        lines += _activity_table(worker)
        lines += ["Top functions by self time:", ""]
        lines += _table(["function", "self"],
                        [[f"`{f['name']}`", f"{f['share']:.1%}"] for f in worker.get("top_self", [])[:10]])
    rps, p99 = result["targets"]["throughput_rps"], result["targets"]["p99_ms"]
    met = rps["reached"] >= rps["target"] and p99["reached"] < p99["target"]
    lines += [f"Target: ≥ {rps['target']:,.0f} requests/s at {settings['clients']} clients with p99 < "
              f"{p99['target']:g} ms on the 202 path. Reached: {_n(rps['reached'], 0)} req/s, p99 "
              f"{_n(p99['reached'])} ms — {_verdict(met)}.", ""]
    return lines


def _search_section(result: dict[str, Any]) -> list[str]:
    settings, load = result["settings"], result["load"]
    lines = [f"## 7. Finding leads: `GET /v1/leads` with {settings['leads']:,} leads in one workspace", "",
             _measured(result), ""]
    seconds = load["seconds"]
    statuses = ", ".join(f"{k} {v / settings['leads']:.0%}" for k, v in load["statuses"].items())
    lines += [
        f"{settings['leads']:,} leads written straight into `leads.leads` and `leads.lead_identities` in SQL "
        "(`generate_series`; indexes dropped and re-created from their own definitions) in "
        f"{_n(seconds['total'], 0)} s "
        f"(leads {_n(seconds['insert_leads'], 0)} s, identities {_n(seconds['insert_identities'], 0)} s, indexes "
        f"{_n(seconds['create_indexes'], 0)} s, VACUUM ANALYZE {_n(seconds['vacuum_analyze'], 0)} s): "
        f"{settings['owners']} owners (15% unassigned), {settings['sources']} sources with skewed volumes each feeding "
        f"one channel, 12 tags, created over a year (denser towards now), ids UUIDv7 of created_at. Statuses: "
        f"{statuses}. Sizes: " + "; ".join(f"`{k}` {v}" for k, v in load["sizes"].items()) + ".",
        "",
        f"Per query: {settings['clients']} closed-loop clients on the API ({settings['warmup_s']:g} s warm-up, "
        f"{settings['duration_s']:g} s measured), then {settings['clients']} asyncpg connections running the exact SQL "
        "`LeadRepository.page` builds for it (the baseline: the database's share). Page size "
        f"{settings['page_size']}; \"same rows\" checks the API's page against the SQL's. Indexes and execution time "
        "from `EXPLAIN (ANALYZE, BUFFERS)` with the same parameters (whole plans in `lead_search.json`); "
        "\"generic\" counts baseline executions PostgreSQL ran with a generic plan of the prepared statement.",
        "",
    ]
    target = result["targets"]["p95_ms_filtered_first_page"]
    rows = []
    for q in result["queries"]:
        v, b, explain = q["voronka"], q["baseline"], q["explain"]
        cache = b.get("plan_cache", {})
        verdict = ("-" if not (q["filtered"] and q["first_page"])
                   else ("met" if v["p95_ms"] < target["target"] else "**not met**"))
        rows.append([
            q["name"], str(q["rows_returned"]) + ("" if q["same_rows_as_baseline"] else " (**differ**)"),
            _ms(v["p50_ms"]), _ms(v["p95_ms"]), _ms(v["p99_ms"]), _n(v["per_s"], 0),
            _ms(b["p50_ms"], 2), _ms(b["p95_ms"], 2), _n(q["ratio_p95"], 1),
            ", ".join(f"`{i}`" for i in explain["indexes"]) or "seq scan", _ms(explain["execution_ms"], 2),
            str(cache.get("generic_plans", "-")), verdict,
        ])
    lines += _table(["query", "rows", "API p50 ms", "p95", "p99", "req/s", "SQL p50 ms", "p95", "p95 ratio",
                     "indexes", "EXPLAIN ms", "generic", f"p95 < {target['target']:g} ms"], rows)
    api_cpu = [(q["voronka"]["cpu_cores"].get("leads"), q["voronka"]["per_s"]) for q in result["queries"]
               if q["explain"]["execution_ms"] is not None and q["explain"]["execution_ms"] < 1.0]
    if api_cpu:
        per_request = sorted(c * 1e6 / r for c, r in api_cpu if c is not None and r)
        if per_request:
            lines += [f"For the queries PostgreSQL answers in under 1 ms, the leads process spent "
                      f"{_n(per_request[0], 0)}-{_n(per_request[-1], 0)} µs of CPU per request "
                      f"(leads cores / requests per second).", ""]
    slow = [q for q in result["queries"] if q["baseline"]["p95_ms"] >= target["target"]]
    for q in slow:
        lines += [f"<details><summary>EXPLAIN (ANALYZE, BUFFERS): {q['name']}</summary>", "", "```",
                  *q["explain"]["plan"], "```", "", "</details>", ""]
    profile = result.get("profile")
    if profile and profile.get("samples"):
        run = profile["run"]
        lines += [f"Where the leads process's CPU goes serving \"{profile['query']}\" (a further run, not counted "
                  f"above, under py-spy at {profile['rate']} Hz: p50 {_ms(run['p50_ms'])} ms while sampled; Python "
                  f"on the CPU {profile['busy_share']:.0%} of the time; `SEARCH_ACTIVITIES` in "
                  "`bench/lead_search.py`):", ""]
        lines += _activity_table(profile)
    lines += [f"Target: p95 < {target['target']:g} ms for a filtered first page. Worst: {_ms(target['reached'])} ms "
              f"({target['worst_query']}) — {_verdict(not target['not_met'])}"
              + (f"; not met by: {', '.join(target['not_met'])}." if target["not_met"] else "."), ""]
    return lines


def _import_section(result: dict[str, Any]) -> list[str]:
    """bench/import_csv.py writes its own part (`section`); a result without that module is shown in short."""
    try:
        from bench import import_csv
    except ImportError:
        import_csv = None  # type: ignore[assignment]
    header = ["## 8. CSV import", "", _measured(result), ""]
    if import_csv is not None and hasattr(import_csv, "section"):
        body: list[str] = import_csv.section(result)
        # Its own heading, numbered like the others, then the line saying when it was measured.
        return [f"## 8. {body[0].removeprefix('## ')}", "", _measured(result), *body[1:]]
    targets = result.get("targets", {})
    return [*header, *[f"- {k}: target {v.get('target')}, reached {v.get('reached')}" for k, v in targets.items()],
            ""]


def _new_limits(batch: dict[str, Any] | None, webhook: dict[str, Any] | None,
                search: dict[str, Any] | None) -> list[str]:
    lines = []
    if batch:
        top = max(batch["settings"]["clients"])
        v = next(r for r in batch["runs"] if r["system"] == "voronka" and r["clients"] == top)
        b = next(r for r in batch["runs"] if r["system"] == "baseline" and r["clients"] == top)
        cpu = v["cpu_cores"]
        leads = cpu.get("leads", 0.0)
        bound = ("CPU-bound (one uvicorn worker uses at most one core)" if leads >= 0.85
                 else "not using a whole core (it waits on PostgreSQL or shares the machine: other work took "
                      f"{cpu.get('other', 0):.2f} cores)")
        per_lead = v["cpu_cores"].get("leads", 0.0) * 1e6 / v["leads_per_s"] if v["leads_per_s"] else None
        ceiling = f"; at that cost one whole core would take in at most {_n(1e6 / per_lead, 0)} leads/s" \
            if per_lead else ""
        lines.append(
            f"- **Batch ingest**: at {top} clients the leads process used {leads:.2f} cores, {bound}: "
            f"{_cpu_per_item(leads, v['leads_per_s'])} µs of its CPU per lead against "
            f"{_cpu_per_item(cpu.get('postgres'), v['leads_per_s'])} µs of PostgreSQL's (the baseline: "
            f"{_cpu_per_item(b['cpu_cores'].get('postgres'), b['leads_per_s'])} µs of PostgreSQL per lead){ceiling}."
        )
        costs = batch.get("python_cpu_us_per_lead")
        if costs:
            lines.append("- **Per lead, before any SQL** (measured in the bench process): "
                         + ", ".join(f"{k} {_n(c, 0)} µs" for k, c in costs.items()) + ".")
        profile = batch.get("profile")
        if profile and profile.get("by_activity"):
            parts = ", ".join(f"{a['name']} {a['share']:.0%}" for a in profile["by_activity"][:6])
            lines.append(f"- **Leads taking batches in** (profile): {parts}.")
    if webhook:
        v, b = webhook["runs"][0], webhook["runs"][1]
        leads, base = v["cpu_cores"].get("leads", 0.0), b["cpu_cores"].get("baseline", 0.0)
        lines.append(
            f"- **Webhook 202 path**: {leads:.2f} cores for {_n(v['throughput_rps'], 0)} req/s "
            f"({_cpu_per_request(leads, v['throughput_rps'])} µs per request) against the baseline's {base:.2f} "
            f"({_cpu_per_request(base, b['throughput_rps'])} µs)."
        )
        drain = webhook.get("drain")
        if drain and drain.get("leads_per_s"):
            cpu = drain["cpu_cores"]
            lines.append(
                f"- **Inbound worker**: {_n(drain['leads_per_s'], 0)} leads/s with leads at {cpu.get('leads', 0):.2f} "
                f"cores and PostgreSQL at {cpu.get('postgres', 0):.2f}: neither is saturated. It works one request "
                "at a time on one connection, each in its own savepoint with its own capture() (identity claim, "
                "lead insert, touch, outbox, status update), so a lead costs a string of round trips"
                + (f"; sampled every 20 ms, its connections were waiting for the leads process's next statement "
                   f"in {_idle_share(drain):.0%} of the samples and executing one in {_active_share(drain):.0%}"
                   if drain.get("sessions", {}).get("states")
                   else "") + "."
            )
        worker = webhook.get("worker_profile")
        if worker and worker.get("by_activity"):
            parts = ", ".join(f"{a['name']} {a['share']:.0%}" for a in worker["by_activity"][:5])
            lines.append(f"- **Inbound worker** (profile): {parts}.")
    if search:
        target = search["targets"]["p95_ms_filtered_first_page"]
        db_bound = [q["name"] for q in search["queries"] if q["baseline"]["p95_ms"] >= target["target"]]
        api_bound = [q["name"] for q in search["queries"]
                     if q["voronka"]["p95_ms"] >= target["target"] and q["name"] not in db_bound]
        if db_bound:
            lines.append(f"- **Search, database-bound** (the SQL alone misses {target['target']:g} ms at p95): "
                         f"{', '.join(db_bound)}. Their plans are above.")
        if api_bound:
            lines.append(f"- **Search, service-bound** (the SQL is fast, the API is not): {', '.join(api_bound)}.")
        profile = search.get("profile")
        if profile and profile.get("by_activity"):
            parts = ", ".join(f"{a['name']} {a['share']:.0%}" for a in profile["by_activity"][:5])
            lines.append(f"- **Leads serving a page** (profile): {parts}.")
    return lines


def _idle_share(drain: dict[str, Any]) -> float:
    states: dict[str, float] = drain["sessions"]["states"]
    return sum(v for k, v in states.items() if k.startswith("idle in transaction"))


def _active_share(drain: dict[str, Any]) -> float:
    states: dict[str, float] = drain["sessions"]["states"]
    return sum(v for k, v in states.items() if k.startswith("active"))


def _targets_section(results: dict[str, dict[str, Any] | None]) -> list[str]:
    """Every benchmark's target on one table, with whether the last run met it."""
    rows = []
    leads = results.get("leads")
    if leads:
        t = leads["targets"]
        rps, p99 = t["throughput_rps_at_16"], t["p99_ms_at_16"]
        if rps["reached"] is not None and p99["reached"] is not None:
            rows.append(["`POST /v1/leads`, 16 clients", f"≥ {rps['target']:,.0f}/s, p99 < {p99['target']:g} ms",
                         f"{_n(rps['reached'], 0)}/s, p99 {_n(p99['reached'])} ms",
                         rps["reached"] >= rps["target"] and p99["reached"] < p99["target"], leads])
    latency = results.get("latency")
    if latency and latency["targets"]["p99_ms"]["reached"] is not None:
        t = latency["targets"]["p99_ms"]
        rows.append(["event latency, lead → reporting", f"p99 < {t['target']:g} ms", f"p99 {_n(t['reached'])} ms",
                     t["reached"] < t["target"], latency])
    outbox = results.get("outbox")
    if outbox:
        t = outbox["targets"]["events_per_s"]
        rows.append(["outbox throughput", f"≥ {t['target']:,.0f} events/s", f"{_n(t['reached'], 0)} events/s",
                     t["reached"] >= t["target"], outbox])
    batch = results.get("batch")
    if batch:
        t = batch["targets"]["leads_per_s"]
        rows.append(["`POST /v1/leads:batch`, 1,000 a request", f"≥ {t['target']:,.0f} leads/s",
                     f"{_n(t['reached'], 0)} leads/s", t["reached"] >= t["target"], batch])
    webhook = results.get("webhook")
    if webhook:
        rps, p99 = webhook["targets"]["throughput_rps"], webhook["targets"]["p99_ms"]
        rows.append(["webhook ingest (202 path), 16 clients", f"≥ {rps['target']:,.0f}/s, p99 < {p99['target']:g} ms",
                     f"{_n(rps['reached'], 0)}/s, p99 {_n(p99['reached'])} ms",
                     rps["reached"] >= rps["target"] and p99["reached"] < p99["target"], webhook])
    search = results.get("search")
    if search:
        t = search["targets"]["p95_ms_filtered_first_page"]
        rows.append([f"`GET /v1/leads`, filtered first page, {search['settings']['leads']:,} leads",
                     f"p95 < {t['target']:g} ms",
                     f"worst p95 {_n(t['reached'])} ms; {len(t['not_met'])} of "
                     f"{sum(q['filtered'] and q['first_page'] for q in search['queries'])} queries miss it",
                     not t["not_met"], search])
    imported = results.get("import")
    if imported and "seconds" in imported.get("targets", {}):
        t = imported["targets"]["seconds"]
        # Its own verdict also asks that every row be accounted for (created, merged or rejected).
        met = t["reached"] < t["target"] and imported.get("accounted_for", True)
        reached = f"{_n(t['reached'])} s" + ("" if imported.get("accounted_for", True) else ", **rows missing**")
        rows.append(["CSV import", f"< {t['target']:g} s", reached, met, imported])
    distributed = results.get("distribution")
    if distributed:
        t = distributed["targets"]["added_p99_ms"]
        rows.append(["scoring and distribution's cost: `POST /v1/leads` at 1,000/s, all workers vs none",
                     f"p99 + < {t['target']:g} ms, exactly even", f"p99 {t['reached']:+.1f} ms, "
                     + ("even" if distributed["round_robin_even"] else "uneven"),
                     t["reached"] < t["target"] and distributed["round_robin_even"]
                     and not distributed["left_unassigned"], distributed])
    rescored = results.get("rescoring")
    if rescored:
        t = rescored["targets"]["seconds_for_the_model_change"]
        rows.append(["rescoring 1,000,000 leads after a model change", f"< {t['target']:g} s",
                     f"{_n(t['reached'])} s", t["met"], rescored])
    if not rows:
        return []
    table = [[what, target, reached, _verdict(met) + (" (quick run)" if result.get("quick") else "")]
             for what, target, reached, met, result in rows]
    return ["## Targets", "", *_table(["benchmark", "target", "reached", "verdict"], table)]


def write_summary(results_dir: Path) -> Path:
    results = {name: _load(results_dir, name) for name in FILES}
    leads, latency, outbox = results["leads"], results["latency"], results["outbox"]
    batch, webhook, search, imported = results["batch"], results["webhook"], results["search"], results["import"]
    machine: dict[str, Any] = next((r["machine"] for r in results.values() if r and "machine" in r), {})
    lines = [
        "# Voronka benchmarks",
        "",
        "Written by `python -m bench` (`make bench`); raw numbers in the JSON files beside this one.",
        "",
        f"Machine: {machine.get('cpu_count', '?')} x {machine.get('cpu_model', '?')}, "
        f"{machine.get('memory_gb', '?')} GB, {machine.get('platform', '?')}; Python {machine.get('python', '?')}, "
        f"PostgreSQL {machine.get('postgres', '?')} "
        f"({'embedded' if machine.get('postgres_embedded') else 'DATABASE_URL'}), on the same machine as the "
        "services and the load generator (one asyncio process, raw HTTP/1.1).",
        "",
    ]
    lines += _targets_section(results)
    if leads:
        lines += _leads_section(leads)
    if latency:
        lines += _latency_section(latency)
    if outbox:
        lines += _outbox_section(outbox)
    if leads:
        lines += _profile_section(leads)
    if batch:
        lines += _batch_section(batch)
    if webhook:
        lines += _webhook_section(webhook)
    if search:
        lines += _search_section(search)
    if imported:
        lines += _import_section(imported)
    if results["distribution"]:
        from bench import distribution

        body = distribution.section(results["distribution"])
        lines += [f"## 9. {body[0].removeprefix('## ')}", "", _measured(results["distribution"]), *body[1:]]
    if results["rescoring"]:
        from bench import rescoring

        body = rescoring.section(results["rescoring"])
        lines += [f"## 10. {body[0].removeprefix('## ')}", "", _measured(results["rescoring"]), *body[1:]]
    limits = _limits_section(leads, latency, outbox)
    lines += [*limits[:-1], *_new_limits(batch, webhook, search), ""]
    path = results_dir / "summary.md"
    path.write_text("\n".join(lines).rstrip("\n") + "\n")
    return path
