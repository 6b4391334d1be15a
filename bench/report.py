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
FILES = {"leads": "leads_write.json", "latency": "event_latency.json", "outbox": "outbox_throughput.json"}


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
                     f"{latency['settings']['rate_per_s']:g} leads/s (delivery is woken by NOTIFY on commit). At that "
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


def write_summary(results_dir: Path) -> Path:
    leads, latency, outbox = (_load(results_dir, name) for name in ("leads", "latency", "outbox"))
    machine: dict[str, Any] = next((r["machine"] for r in (leads, latency, outbox) if r and "machine" in r), {})
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
    if leads:
        lines += _leads_section(leads)
    if latency:
        lines += _latency_section(latency)
    if outbox:
        lines += _outbox_section(outbox)
    if leads:
        lines += _profile_section(leads)
    lines += _limits_section(leads, latency, outbox)
    path = results_dir / "summary.md"
    path.write_text("\n".join(lines).rstrip("\n") + "\n")
    return path
