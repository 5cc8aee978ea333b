"""Alembic environment and revisions; `db.migrate.upgrade` applies them."""
