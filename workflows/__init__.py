"""Temporal workflows: deterministic code only, no I/O imports.

`WORKFLOWS` is what `worker.py` registers.
"""

from collections.abc import Sequence

WORKFLOWS: Sequence[type] = ()
