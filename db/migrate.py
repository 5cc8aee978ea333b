"""Apply migrations programmatically (used by `make run`, the tests and the bench), as the
tables' owner; then give the application role its password, so it can log in."""

from __future__ import annotations

from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from psycopg import sql

from connections import libpq_url
from settings import APP_ROLE

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, app_password: str = "") -> None:
    """Migrate to head; with `app_password`, the application role may log in with it
    (docs/security.md#row-level-security)."""
    command.upgrade(alembic_config(database_url), "head")
    if app_password:
        with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(APP_ROLE), sql.Literal(app_password)
                )
            )


if __name__ == "__main__":
    from settings import get_settings

    settings = get_settings()
    upgrade(settings.async_database_url, settings.app_database_password.get_secret_value())
