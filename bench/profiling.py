"""Sampling a running service with py-spy, and reading the samples: where the process spends its CPU.

A sampler writes collapsed stacks with full file names, which `summarize` turns into an activity breakdown
(JWT, transaction, dispatcher...), top functions and a per-package breakdown; a second one can draw the
flame graph SVG to keep.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_SITE_PACKAGES = re.compile(r"site-packages/(?P<package>[^/]+)")
_STDLIB = re.compile(r"/lib/python3\.\d+/(?P<module>[^/]+?)(?:\.py)?(?:/|$)")
# Frames that start the process and run the event loop: on most stacks, they say nothing about the work.
_SCAFFOLDING = ("<frozen runpy>", "click/core.py", "uvicorn/__main__.py", "uvicorn/main.py", "uvicorn/server.py",
                "uvicorn/_compat.py", "asyncio/runners.py", "asyncio/base_events.py", "asyncio/events.py")
# uvloop is compiled: time in its C loop (epoll, transports, scheduling) shows up as the Python frame that
# entered it.
EVENT_LOOP = "event loop (uvloop C code; may include waiting in epoll)"


def py_spy() -> str | None:
    """The py-spy next to our interpreter (pip install py-spy into the venv), or on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


@dataclass
class Recording:
    """py-spy samplers running against one process."""

    svg: Path | None
    raw: Path
    seconds: float
    rate: int
    processes: list[subprocess.Popen[bytes]]
    log: Path
    started: float = field(default_factory=time.monotonic)

    def stop(self) -> list[str]:
        """Ends sampling now (py-spy writes what it has on SIGINT); the problems reported."""
        self.seconds = time.monotonic() - self.started
        for process in self.processes:
            process.send_signal(signal.SIGINT)
        return self.wait()

    def wait(self) -> list[str]:
        """Waits for the samplers; the problems they reported (empty when all went well)."""
        problems = []
        for process in self.processes:
            try:
                code = process.wait(self.seconds + 30)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
            if code != 0:
                problems.append(f"py-spy exited with {code}; see {self.log}")
        return problems


def record(
    pid: int, *, raw: Path, svg: Path | None = None, seconds: float, log: Path, rate: int = 50,
    nonblocking: bool = False,
) -> Recording:
    """Starts sampling `pid` for `seconds`, `rate` times a second per sampler: collapsed stacks into `raw`,
    and with `svg` a second sampler drawing the flame graph.

    Blocking by default: py-spy pauses the process for each sample, which costs it throughput (the summary
    shows how much). Without the pause, stacks read while the process runs come out torn (asyncio frames
    change under the reader): self time stays right, but callers and inclusive time become unusable.
    """
    binary = py_spy()
    if binary is None:
        raise FileNotFoundError("py-spy is not installed (.venv/bin/pip install py-spy)")
    common = [binary, "record", "--pid", str(pid), "--duration", str(round(seconds)), "--rate", str(rate)]
    if nonblocking:
        common.append("--nonblocking")
    with open(log, "ab") as output:
        processes = [subprocess.Popen([*common, "--format", "raw", "--full-filenames", "-o", str(raw)],
                                      stdout=output, stderr=output)]
        if svg is not None:
            svg.parent.mkdir(parents=True, exist_ok=True)
            processes.append(
                subprocess.Popen([*common, "--format", "flamegraph", "-o", str(svg)], stdout=output, stderr=output)
            )
    return Recording(svg, raw, seconds, rate, processes, log)


# What a process is doing in a sample, by the frames on its stack. The first rule that matches wins, so the
# specific ones (a named Voronka function anywhere on the stack) come before the generic ones (the package
# of the innermost frame): asyncpg time under `publish` counts as the outbox insert.
ANY_FRAME, LEAF = "any frame", "leaf"
Rule = tuple[str, str, tuple[str, ...]]
_SERVICE_TAIL: tuple[Rule, ...] = (
    ("access log + metrics", ANY_FRAME, ("/logging/", "prometheus_client", "JsonFormatter")),
    ("request-id middleware (own code)", LEAF, ("services/common/observability.py",)),
    ("HTTP protocol (uvicorn, httptools)", LEAF, ("/uvicorn/",)),
    # uvloop is C: its own work and, when py-spy misses that the thread sleeps in epoll, waiting.
    (EVENT_LOOP, LEAF, ("asyncio/runners.py", "asyncio/base_events.py")),
    ("FastAPI/Starlette routing, middleware, dependencies", ANY_FRAME, ("/fastapi/", "/starlette/", "/anyio/")),
)
LEADS_ACTIVITIES: tuple[Rule, ...] = (
    ("outbox dispatcher (sequencer, courier, httpx)", ANY_FRAME,
     ("services/common/dispatcher.py", "/httpx/", "/httpcore/", "/h11/", "_process_notification (")),
    ("JWT verification (current_principal)", ANY_FRAME, ("current_principal (",)),
    ("outbox insert + NOTIFY (publish)", ANY_FRAME, ("publish (",)),
    ("lead insert (LeadRepository.add)", ANY_FRAME, ("LeadRepository.add (",)),
    ("request body: read, JSON, validation (LeadCreate, email)", ANY_FRAME,
     ("request_body_to_args (", "Request.body (", "Request.json (", "/email_validator/", "leads/schemas.py")),
    ("transaction begin/commit, pool acquire/release", ANY_FRAME,
     ("transaction (", "asyncpg/transaction.py", "asyncpg/pool.py")),
    # post_lead's own frame is LeadOut.model_validate (pydantic's C code counts as its Python caller).
    ("response: LeadOut validation + serialization", ANY_FRAME,
     ("serialize_response (", "jsonable_encoder (", "model_response (", "Response.render (", "Response.__init__ (")),
    ("response: LeadOut validation + serialization", LEAF, ("post_lead (",)),
    *_SERVICE_TAIL,
)
REPORTING_ACTIVITIES: tuple[Rule, ...] = (
    ("handler: LeadCreatedV1 validation + one INSERT per event (on_lead_created)", ANY_FRAME,
     ("on_lead_created (",)),
    ("inbox insert, transaction, pool (Inbox._apply_all)", ANY_FRAME, ("Inbox._apply_all (",)),
    ("CloudEvent validation (Inbox.receive)", ANY_FRAME, ("Inbox.receive (",)),
    ("signature verification (standardwebhooks)", ANY_FRAME, ("DeliverySigner.verify (", "/standardwebhooks/")),
    ("body read + JSON parse (receive_events)", ANY_FRAME, ("receive_events (",)),
    *_SERVICE_TAIL,
)


def activity(frames: list[tuple[str, str]], rules: tuple[Rule, ...] = LEADS_ACTIVITIES) -> str:
    labels = [f"{function} ({path}" for function, path in frames]
    for name, where, needles in rules:
        candidates = labels if where == ANY_FRAME else labels[-1:]
        if any(needle in label for label in candidates for needle in needles):
            return name
    return "other"


def _parse_frame(frame: str) -> tuple[str, str]:
    """'post_lead (/x/services/leads/api/leads.py:53)' -> ('post_lead', '/x/services/leads/api/leads.py')."""
    match = _FRAME.match(frame)
    if match is None:
        return frame, ""
    return match["function"], match["file"]


def component(path: str) -> str:
    """Which code a file belongs to: a third-party package, a Voronka module, or the standard library."""
    if path.endswith(("asyncio/runners.py", "asyncio/base_events.py")):
        return EVENT_LOOP
    if (match := _SITE_PACKAGES.search(path)) is not None:
        return match["package"].removesuffix(".py")
    if "/services/" in path:
        return "voronka:" + path[path.rindex("/services/") + 1 :]
    if (match := _STDLIB.search(path)) is not None:
        return "stdlib:" + match["module"]
    return path or "?"


def _label(function: str, path: str) -> str:
    if "/site-packages/" in path:
        path = path.split("/site-packages/", 1)[1]
    elif "/services/" in path:
        path = path[path.rindex("/services/") + 1 :]
    elif (match := _STDLIB.search(path)) is not None:
        path = path[match.start() + 1 :].split("/", 2)[-1]
    return f"{function} ({path})"


def summarize(
    raw: Path, *, seconds: float, rate: int, top: int = 15, rules: tuple[Rule, ...] = LEADS_ACTIVITIES
) -> dict[str, Any]:
    """Samples per activity, self and inclusive time per function, self time per component: shares of all.

    py-spy leaves idle samples out, so `busy_share` (samples / possible samples) approximates how much of one
    core the process's Python code kept busy.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    components: Counter[str] = Counter()
    activities: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_parse_frame(f) for f in stack.split(";")]
        leaf_function, leaf_path = frames[-1]
        own[_label(leaf_function, leaf_path)] += count
        components[component(leaf_path)] += count
        activities[activity(frames, rules)] += count
        for label in {_label(f, p) for f, p in frames if not p.endswith(_SCAFFOLDING)}:
            inclusive[label] += count
    if total == 0:
        return {"samples": 0}

    def shares(counter: Counter[str], limit: int) -> list[dict[str, Any]]:
        return [{"name": name, "share": round(count / total, 4)} for name, count in counter.most_common(limit)]

    return {
        "samples": total,
        "busy_share": round(total / (seconds * rate), 3),
        "by_activity": shares(activities, len(rules) + 1),
        "top_self": shares(own, top),
        "top_inclusive": shares(inclusive, top + 10),
        "by_component": shares(components, top),
    }
