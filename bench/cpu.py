"""CPU time per process group, read from /proc: where a call's cost goes on this machine,
which tells a throughput ratio that CPU bounds (2 cores here) from one that waiting bounds.

Only the benchmark's own processes count: this one and its descendants, and the process
trees whose command line names `also` (the embedded PostgreSQL, which pg_ctl detaches),
so another stack running on a shared machine stays out of the figures."""

from __future__ import annotations

import os
import time
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
# The first pattern found in a process's command line names its group.
GROUPS = (
    ("temporal", "Temporal server"),
    ("postgres", "PostgreSQL"),
    ("uvicorn", "API"),
    ("-m worker", "booking worker"),
)
SELF = "bench client (+ baseline worker)"


def _processes() -> dict[int, tuple[int, str, float]]:
    """pid → (parent pid, command line, CPU seconds so far)."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        cpu = (int(fields[11]) + int(fields[12])) / _TICKS
        found[int(proc.name)] = (int(fields[1]), command, cpu)
    return found


def cpu_seconds(also: str) -> dict[str, float]:
    """User + system CPU seconds so far of the benchmark's processes, by group."""
    processes = _processes()
    me = os.getpid()
    mine = {me} | {pid for pid, (_, command, _) in processes.items() if also in command}
    grew = True
    while grew:
        children = {pid for pid, (parent, _, _) in processes.items() if parent in mine}
        grew = not children <= mine
        mine |= children
    spent: dict[str, float] = {}
    for pid in mine:
        _, command, cpu = processes[pid]
        group = SELF if pid == me else next((g for p, g in GROUPS if p in command), None)
        if group is not None:
            spent[group] = spent.get(group, 0.0) + cpu
    return spent


def machine_seconds() -> tuple[float, float]:
    """(CPU seconds every process on the machine has used, monotonic seconds): with
    `others_cores`, how busy the machine was apart from the benchmark."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields) - idle) / _TICKS, time.monotonic()


def others_cores(
    machine: tuple[float, float], before: dict[str, float], after: dict[str, float]
) -> float:
    """Cores other processes kept busy since `machine` (machine_seconds) was read, the
    benchmark's own CPU between `before` and `after` (cpu_seconds) taken out. On a shared
    2-core machine they inflate every process's CPU per call too (shared caches and
    cores), not only the wall times: figures of sittings with different loads do not
    compare."""
    used, began = machine
    now_used, now = machine_seconds()
    ours = sum(after.values()) - sum(before.values())
    return max(0.0, (now_used - used - ours) / max(now - began, 1e-9))


def per_call_ms(before: dict[str, float], after: dict[str, float], calls: int) -> dict[str, float]:
    """Processes that ended between the two readings are not counted."""
    spent = {group: (t - before.get(group, 0.0)) * 1000 / calls for group, t in after.items()}
    return {group: ms for group, ms in spent.items() if ms > 0}
