"""What migrations use to wall tenants off (docs/security.md#row-level-security): the
application role, and row-level security on a tenant table. Every migration that creates
a tenant table calls `tenant_table` for it."""

from __future__ import annotations

from alembic import op

from settings import APP_ROLE

__all__ = ["APP_ROLE", "drop_tenant_table", "tenant_table"]


def tenant_table(
    table: str, *, visible: str = "holdfast_visible(tenant_id)", grant: str = "ALL"
) -> None:
    """Row-level security on `table`: the application role sees and writes only the rows
    for which `visible` holds (by default, those of the transaction's tenant)."""
    privileges = "SELECT, INSERT, UPDATE, DELETE" if grant == "ALL" else grant
    op.execute(f"GRANT {privileges} ON {table} TO {APP_ROLE}")
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} USING ({visible}) WITH CHECK ({visible})"
    )


def drop_tenant_table(table: str) -> None:
    op.execute(f"DROP POLICY tenant_isolation ON {table}")
    op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    op.execute(f"REVOKE ALL ON {table} FROM {APP_ROLE}")
