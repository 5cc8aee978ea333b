"""Timing helpers: many runs, report percentiles in milliseconds."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Timing:
    p50: float
    p95: float
    runs: int

    def __str__(self) -> str:
        return f"p50 {self.p50:8.2f} ms   p95 {self.p95:8.2f} ms   ({self.runs} runs)"


def measure(fn: Callable[[], object], runs: int, warmup: int = 3) -> Timing:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
    return Timing(statistics.median(samples), p95, runs)


# The application role's password and the audit key, as `make run` would generate them:
# the benchmark's API and worker connect as production's do (row-level security and the
# audit trigger included).
APP_PASSWORD = "bench-app-role-password"
SECURITY_ENV = {"APP_DATABASE_PASSWORD": APP_PASSWORD, "AUDIT_KEY": "bench-audit-key-" + "k" * 32}


def api_command(port: int) -> list[str]:
    """The API as production runs it, on a port of the benchmark's."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "api.app:create_app",
        "--factory",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
