"""Tenants and their API keys (docs/security.md#api-keys)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from contract import KEY_PREFIXES, ApiKeyKind
from db.models import ApiKey, Tenant

# What a key's listing shows of it: enough to tell keys apart, nothing to guess with.
SHOWN_PREFIX = 12


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def issue_api_key(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    kind: ApiKeyKind = ApiKeyKind.SECRET,
    name: str = "",
    allowed_origins: Sequence[str] = (),
) -> tuple[ApiKey, str]:
    """A new random key; only its digest is stored, so this is the one time it is seen."""
    key = KEY_PREFIXES[kind] + secrets.token_urlsafe(32)
    row = ApiKey(
        tenant_id=tenant_id,
        key_hash=hash_key(key),
        prefix=key[:SHOWN_PREFIX],
        kind=kind,
        name=name,
        allowed_origins=list(allowed_origins),
    )
    session.add(row)
    await session.flush()
    return row, key


async def create_tenant(session: AsyncSession, name: str) -> tuple[Tenant, str]:
    tenant = Tenant(name=name)
    session.add(tenant)
    await session.flush()
    _, key = await issue_api_key(session, tenant.id, name="first key")
    return tenant, key
