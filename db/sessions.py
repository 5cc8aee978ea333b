"""Session factories on one engine."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker


@dataclass(frozen=True)
class Sessions:
    """`transaction` for units of several statements; `autocommit` for a single statement,
    atomic by itself, which then costs one round trip instead of three (BEGIN, it, COMMIT)."""

    transaction: async_sessionmaker[AsyncSession]
    autocommit: async_sessionmaker[AsyncSession]

    @classmethod
    def on(cls, engine: AsyncEngine) -> Sessions:
        return cls(
            async_sessionmaker(engine, expire_on_commit=False),
            async_sessionmaker(
                engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
            ),
        )
