"""The `holdfast` command, for operators (docs/operations.md#the-holdfast-command).

Each group is a module: `audit` (cli/audit.py), `tenants` and `keys` (cli/tenants.py),
`bookings` (cli/bookings.py), `doctor` (cli/doctor.py), `load` (cli/load.py). Run in the
project folder, every command works against the `make run` stack without connection
settings (cli/stack.py).
Exit 0: done, or sound; 1: a check found something broken; 2: it could not run (bad
usage, a missing setting, an unreachable database).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer
from sqlalchemy.exc import OperationalError

from cli import audit, bookings, doctor, load, tenants
from cli.common import CANNOT_RUN

app = typer.Typer(
    name="holdfast",
    help="Holdfast operator commands.",
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    rich_markup_mode="markdown",
    add_completion=False,
)
app.add_typer(audit.app, name="audit")
app.add_typer(tenants.tenants, name="tenants")
app.add_typer(tenants.keys, name="keys")
app.add_typer(bookings.app, name="bookings")
app.command("doctor")(doctor.doctor)
app.command("load")(load.load)


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: typer's own exit codes (2 for bad usage) and ours."""
    try:
        app(args=list(argv) if argv is not None else None, prog_name="holdfast")
    except SystemExit as exit_:
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else CANNOT_RUN
    except OperationalError as err:  # the database went away (or never was there)
        print(f"holdfast: cannot reach the database: {err.orig}", file=sys.stderr)
        return CANNOT_RUN
    return 0


if __name__ == "__main__":
    sys.exit(main())
