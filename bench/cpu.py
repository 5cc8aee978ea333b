"""CPU time per process group, read from /proc: where a call's cost goes on this machine,
which tells a throughput ratio that CPU bounds (2 cores here) from one that waiting bounds."""

from __future__ import annotations

import os
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


def cpu_seconds() -> dict[str, float]:
    """User + system CPU seconds so far of every process in each group (and this one)."""
    found: dict[str, float] = {}
    me = str(os.getpid())
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        group = SELF if proc.name == me else next((g for p, g in GROUPS if p in command), None)
        if group is not None:
            found[group] = found.get(group, 0.0) + (int(fields[11]) + int(fields[12])) / _TICKS
    return found


def per_call_ms(before: dict[str, float], after: dict[str, float], calls: int) -> dict[str, float]:
    """Processes that ended between the two readings are not counted."""
    spent = {group: (t - before.get(group, 0.0)) * 1000 / calls for group, t in after.items()}
    return {group: ms for group, ms in spent.items() if ms > 0}
