"""Session factories on one engine, each session acting for a tenancy (db/tenancy.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db.tenancy import NOBODY, TenancySource, TenantSession, tenancy_info

# What opens a session acting as it was told to (tests and helpers that only read).
SessionFactory = Callable[[], AsyncSession]


@dataclass(frozen=True)
class Sessions:
    """`transaction` for units of several statements; `autocommit` for a single statement,
    atomic by itself, which then costs one round trip instead of three (BEGIN, it, COMMIT).
    Sessions act as the factory's tenancy unless told otherwise."""

    _transaction: async_sessionmaker[AsyncSession]
    _autocommit: async_sessionmaker[AsyncSession]

    @classmethod
    def on(cls, engine: AsyncEngine, acting: TenancySource = NOBODY) -> Sessions:
        info = tenancy_info(acting)
        return cls(
            async_sessionmaker(
                engine, expire_on_commit=False, sync_session_class=TenantSession, info=info
            ),
            async_sessionmaker(
                engine.execution_options(isolation_level="AUTOCOMMIT"),
                expire_on_commit=False,
                sync_session_class=TenantSession,
                info=info,
            ),
        )

    def transaction(self, acting: TenancySource | None = None) -> AsyncSession:
        return self._transaction(**_acting(acting))

    def autocommit(self, acting: TenancySource | None = None) -> AsyncSession:
        return self._autocommit(**_acting(acting))


def _acting(acting: TenancySource | None) -> dict[str, object]:
    return {} if acting is None else {"info": tenancy_info(acting)}
