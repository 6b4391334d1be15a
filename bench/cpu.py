"""Who used the CPU during a measured window: each process group in cores, and the rest of the machine.

On two cores the answer to "what limits throughput" is mostly here: a single Python process at ~1.0 core is
CPU-bound, PostgreSQL near the remaining core is the database, and "other" shows noise from outside the bench.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

import psutil


def _busy_seconds() -> float:
    times = psutil.cpu_times()
    busy: float = sum(times) - times.idle - getattr(times, "iowait", 0.0)
    return busy


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    seconds: float = times.user + times.system
    return seconds


@dataclass(frozen=True)
class Snapshot:
    wall: float
    machine_busy: float
    groups: dict[str, dict[int, float]]  # group -> pid -> CPU seconds so far


class CpuMeter:
    """Snapshots the CPU time of named process groups; a postmaster's group includes its backends."""

    def __init__(self, pids: Mapping[str, int], *, postmaster_pid: int | None = None) -> None:
        self.pids = {**pids, "generator": os.getpid()}
        self.postmaster_pid = postmaster_pid

    def _group_processes(self) -> dict[str, list[psutil.Process]]:
        groups: dict[str, list[psutil.Process]] = {}
        for name, pid in self.pids.items():
            try:
                groups[name] = [psutil.Process(pid)]
            except psutil.NoSuchProcess:
                groups[name] = []
        if self.postmaster_pid is not None:
            try:
                postmaster = psutil.Process(self.postmaster_pid)
                groups["postgres"] = [postmaster, *postmaster.children()]
            except psutil.NoSuchProcess:
                groups["postgres"] = []
        return groups

    def snapshot(self) -> Snapshot:
        groups: dict[str, dict[int, float]] = {}
        for name, processes in self._group_processes().items():
            seconds: dict[int, float] = {}
            for process in processes:
                try:
                    seconds[process.pid] = _cpu_seconds(process)
                except psutil.NoSuchProcess:
                    continue
            groups[name] = seconds
        return Snapshot(time.monotonic(), _busy_seconds(), groups)

    @staticmethod
    def cores(start: Snapshot, end: Snapshot) -> dict[str, float]:
        """Average cores each group used between the snapshots, plus `machine` and `other` (the rest)."""
        wall = end.wall - start.wall
        if wall <= 0:
            return {}
        result: dict[str, float] = {}
        for name, seconds in end.groups.items():
            before = start.groups.get(name, {})
            # A backend born inside the window counts from zero; one that died in it is lost (rare: pools).
            used = sum(max(0.0, value - before.get(pid, 0.0)) for pid, value in seconds.items())
            result[name] = round(used / wall, 3)
        machine = (end.machine_busy - start.machine_busy) / wall
        result["machine"] = round(machine, 3)
        result["other"] = round(max(0.0, machine - sum(v for k, v in result.items() if k != "machine")), 3)
        return result
