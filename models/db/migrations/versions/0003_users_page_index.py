"""The users' paging index also holds `active`.

`(org_id, created_at, id)` becomes `(org_id, created_at, id, active)`. A page in the
default order cuts its ids from this index alone (`scim.listing.general_page`), and with
`active` in it a `filter=active eq true` page and its COUNT are index-only scans on
PostgreSQL (and covering-index reads on SQLite): the rows an OFFSET skips, or a COUNT
counts, are no longer read from the table (docs/benchmarks.md).

Both statements run in the migration's transaction, so CREATE INDEX holds a lock that
blocks writes to scim_users while it builds (1.4-1.6 s per million rows here). To
avoid that on a large table, build the index beforehand without blocking writes:

    CREATE INDEX CONCURRENTLY ix_scim_users_org_id_created_at_id_active
        ON scim_users (org_id, created_at, id, active);

and this revision keeps it (IF NOT EXISTS). docs/operations.md says the same.

Revision ID: 0003_users_page_index
Revises: 0002_access_config
Create Date: 2026-12-01 09:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003_users_page_index"
down_revision: str | Sequence[str] | None = "0002_access_config"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("scim_users", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_scim_users_org_id_created_at_id_active"),
            ["org_id", "created_at", "id", "active"],
            unique=False,
            if_not_exists=True,
        )
        batch_op.drop_index(batch_op.f("ix_scim_users_org_id_created_at_id"))


def downgrade() -> None:
    with op.batch_alter_table("scim_users", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_scim_users_org_id_created_at_id"),
            ["org_id", "created_at", "id"],
            unique=False,
        )
        batch_op.drop_index(batch_op.f("ix_scim_users_org_id_created_at_id_active"))
