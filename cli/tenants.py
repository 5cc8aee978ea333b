"""`holdfast tenants create` and `holdfast keys create|revoke`: what the operator's routes
do (docs/api.md#tenants, #api-keys), straight on the database, as the application role
acting for the operator, so row-level security and the audit log apply as they do to the
API. Each prints JSON: the key is shown this once and stored only as a digest."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Annotated

import typer
from sqlalchemy import func, select

from cli.common import fail, operator_sessions
from cli.stack import stack_settings
from contract import ApiKeyKind
from db.models import ApiKey, Tenant
from db.tenants import create_tenant, issue_api_key

tenants = typer.Typer(help="Tenants.", no_args_is_help=True, rich_markup_mode="markdown")
keys = typer.Typer(help="A tenant's API keys.", no_args_is_help=True, rich_markup_mode="markdown")


def _print(answer: dict[str, object]) -> None:
    print(json.dumps(answer, default=str, indent=2))


@tenants.command("create")
def create(name: Annotated[str, typer.Argument(help="The tenant's name.")]) -> None:
    """Create a tenant and its first secret key."""
    if not 1 <= len(name) <= 200:
        fail("a tenant's name is 1 to 200 characters")

    async def run() -> dict[str, object]:
        async with operator_sessions(stack_settings()) as sessions, sessions.transaction() as db:
            tenant, key = await create_tenant(db, name)
            await db.commit()
            return {"id": tenant.id, "name": tenant.name, "api_key": key}

    _print(asyncio.run(run()))


@keys.command("create")
def create_key(
    tenant: Annotated[uuid.UUID, typer.Option(help="The tenant's id.")],
    name: Annotated[str, typer.Option(help="What the key is for.")],
    kind: Annotated[ApiKeyKind, typer.Option(help="secret or publishable.")] = ApiKeyKind.SECRET,
    origin: Annotated[
        list[str] | None, typer.Option(help="An origin a publishable key may be used from.")
    ] = None,
) -> None:
    """Issue a key (shown once)."""
    origins = origin or []
    if origins and kind != ApiKeyKind.PUBLISHABLE:
        fail("only publishable keys have origins")

    async def run() -> dict[str, object]:
        async with operator_sessions(stack_settings()) as sessions, sessions.transaction() as db:
            if await db.get(Tenant, tenant) is None:
                fail(f"no tenant {tenant}")
            row, key = await issue_api_key(db, tenant, kind, name, origins)
            await db.commit()
            return {"id": row.id, "kind": row.kind, "prefix": row.prefix, "api_key": key}

    _print(asyncio.run(run()))


@keys.command("revoke")
def revoke(key_id: Annotated[uuid.UUID, typer.Argument(help="The key's id.")]) -> None:
    """Revoke a key: its next request is refused in every API process."""

    async def run() -> dict[str, object]:
        async with operator_sessions(stack_settings()) as sessions, sessions.transaction() as db:
            row = await db.scalar(
                select(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
            )
            if row is None:
                fail(f"no live key {key_id}")
            row.revoked_at = func.now()
            await db.commit()
            return {"id": key_id, "revoked": True}

    _print(asyncio.run(run()))
