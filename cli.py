"""The `holdfast` command, for operators.

`holdfast audit verify --tenant ID` checks a tenant's audit log (docs/security.md#audit-log):
every entry's hash, its link to the one before, its signature under AUDIT_KEY, and the
head. It connects as the tables' owner (DATABASE_URL), who reads every row whatever
row-level security says, and recomputes everything in Python (db/audit.py), so it trusts
nothing the database says about itself. Exit 0: sound; 1: broken (the first broken entry
is named); 2: it could not check (bad usage, no key, no database).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import Sequence

from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import create_async_engine

from db.audit import VerifyResult, verify
from settings import Settings, get_settings

USAGE_ERROR = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="holdfast", description="Holdfast operator commands.")
    commands = parser.add_subparsers(dest="command", required=True)
    audit = commands.add_parser("audit", help="the audit log (docs/security.md#audit-log)")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    check = audit_commands.add_parser(
        "verify",
        help="check a tenant's chain and signatures",
        description="Exit 0: the log is sound; 1: it is broken (the first broken entry is "
        "named); 2: it could not be checked. Reads DATABASE_URL (the tables' owner) and "
        "AUDIT_KEY from the environment or .env.",
    )
    check.add_argument("--tenant", required=True, type=uuid.UUID, help="the tenant's id")
    return parser


async def _verify(settings: Settings, tenant: uuid.UUID, key: str) -> VerifyResult:
    engine = create_async_engine(
        settings.async_database_url, connect_args={"options": "-c timezone=UTC"}
    )
    try:
        async with engine.connect() as conn:
            return await verify(conn, tenant, key)
    finally:
        await engine.dispose()


def _report(result: VerifyResult) -> str:
    if result.ok:
        return f"ok: {result.checked} entries"
    where = "the head" if result.broken_id is None else f"entry {result.broken_id}"
    return f"broken at {where} (seq {result.broken_seq}): {result.reason}"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = get_settings()
    key = settings.audit_key.get_secret_value()
    if not key:
        print("holdfast: AUDIT_KEY is not set: nothing to check signatures with", file=sys.stderr)
        return USAGE_ERROR
    if not settings.database_url:
        print("holdfast: DATABASE_URL (the tables' owner) is not set", file=sys.stderr)
        return USAGE_ERROR
    try:
        result = asyncio.run(_verify(settings, args.tenant, key))
    except OperationalError as exc:
        print(f"holdfast: cannot reach the database: {exc.orig}", file=sys.stderr)
        return USAGE_ERROR
    print(_report(result))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
