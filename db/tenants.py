"""Tenants and their API keys."""

from __future__ import annotations

import hashlib
import secrets
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from db.models import ApiKey, Tenant

KEY_PREFIX = "hf_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def issue_api_key(session: AsyncSession, tenant_id: uuid.UUID) -> str:
    """A new random key; only its digest is stored, so this is the one time it is seen."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiKey(tenant_id=tenant_id, key_hash=hash_key(key), prefix=key[:10]))
    return key


async def create_tenant(session: AsyncSession, name: str) -> tuple[Tenant, str]:
    tenant = Tenant(name=name)
    session.add(tenant)
    await session.flush()
    return tenant, await issue_api_key(session, tenant.id)
