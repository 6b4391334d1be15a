"""What the numbers were measured on: CPUs, memory, Python, PostgreSQL, and how busy the machine already was."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(postgres_version: str, *, embedded_postgres: bool) -> dict[str, Any]:
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "postgres": postgres_version,
        "postgres_embedded": embedded_postgres,
        # Other work on the machine (another engineer's test run) shows here and in each run's "other" CPU.
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def code_state(root: Path) -> dict[str, Any]:
    """Which code was measured: the commit, the files changed on top of it, and a hash of the service code.

    Others edit the services while benchmarks run; comparing the hash at a benchmark's start and end tells
    whether every process it started ran the same code. Read-only git only (no index refresh).
    """
    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", "--no-optional-locks", *args], cwd=root, capture_output=True, text=True, check=True
            ).stdout
        except (OSError, subprocess.CalledProcessError):
            return ""

    digest = hashlib.sha256()
    for path in sorted([*root.glob("services/**/*.py"), *root.glob("gateway/**/*.py")]):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    status = git("status", "--porcelain", "--", "services", "gateway", "migrations")
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip(),
        "modified": [line[3:] for line in status.splitlines() if line.strip()],  # "XY path"
        "services_sha256": digest.hexdigest()[:12],
    }
