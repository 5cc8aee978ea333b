"""`holdfast audit verify --tenant ID` checks a tenant's audit log
(docs/security.md#audit-log): every entry's hash, its link to the one before, its
signature under AUDIT_KEY, and the head. It connects as the tables' owner (DATABASE_URL),
who reads every row whatever row-level security says, and recomputes everything in
Python (db/audit.py), so it trusts nothing the database says about itself. Exit 0: sound;
1: broken (the first broken entry is named); 2: it could not check (bad usage, no key, no
database)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

import typer
from sqlalchemy.exc import OperationalError

from cli.common import fail, owner_engine
from cli.stack import stack_settings
from db.audit import VerifyResult
from db.audit import verify as verify_chain
from settings import Settings

app = typer.Typer(
    help="The audit log (docs/security.md#audit-log).",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


async def _verify(settings: Settings, tenant: uuid.UUID, key: str) -> VerifyResult:
    engine = owner_engine(settings)
    try:
        async with engine.connect() as conn:
            return await verify_chain(conn, tenant, key)
    finally:
        await engine.dispose()


def _report(result: VerifyResult) -> str:
    if result.ok:
        return f"ok: {result.checked} entries"
    where = "the head" if result.broken_id is None else f"entry {result.broken_id}"
    return f"broken at {where} (seq {result.broken_seq}): {result.reason}"


@app.command()
def verify(
    tenant: Annotated[uuid.UUID, typer.Option(help="The tenant's id.")],
) -> None:
    """Check a tenant's chain and signatures. Exit 0: the log is sound; 1: it is broken
    (the first broken entry is named); 2: it could not be checked. Reads DATABASE_URL
    (the tables' owner) and AUDIT_KEY from the environment, .env, or the `make run`
    stack."""
    settings = stack_settings()
    key = settings.audit_key.get_secret_value()
    if not key:
        fail("AUDIT_KEY is not set: nothing to check signatures with")
    try:
        result = asyncio.run(_verify(settings, tenant, key))
    except OperationalError as exc:
        fail(f"cannot reach the database: {exc.orig}")
    print(_report(result))
    raise typer.Exit(0 if result.ok else 1)
