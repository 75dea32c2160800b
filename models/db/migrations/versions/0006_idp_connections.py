"""IdP connections per organization, and what their runs record.

A new table, `idp_connections` (kind, URL, the credential encrypted with
IDSYNC_SECRET_KEY, schedule, deactivation policy, rate limit, the per-connection lease),
and three columns on `idp_pull_runs` (membership counts, the dry-run flag; existing rows
get 0 / false) with an index on `started_at` for the retention pruning. Nothing existing
is rewritten, so the migration can run while the previous version serves.

Revision ID: 0006_idp_connections
Revises: 0005_request_log_pull_runs
Create Date: 2026-12-03 16:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_idp_connections"
down_revision: str | Sequence[str] | None = "0005_request_log_pull_runs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idp_connections",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("url", sa.String(length=1024), nullable=False),
        sa.Column("client_id", sa.String(length=256), nullable=True),
        sa.Column("token_url", sa.String(length=1024), nullable=True),
        sa.Column("scope", sa.String(length=256), nullable=True),
        sa.Column("secret_enc", sa.Text(), nullable=True),
        sa.Column("interval_s", sa.Integer(), nullable=False),
        sa.Column("deactivate_missing", sa.Boolean(), nullable=False),
        sa.Column("rate_limit_per_s", sa.Float(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_idp_connections_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idp_connections")),
        sa.UniqueConstraint("org_id", "name", name=op.f("uq_idp_connections_org_id_name")),
    )
    with op.batch_alter_table("idp_connections", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idp_connections_enabled_next_run_at"),
            ["enabled", "next_run_at"],
            unique=False,
        )
    with op.batch_alter_table("idp_pull_runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("members_added", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("members_removed", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("dry_run", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.create_index(
            batch_op.f("ix_idp_pull_runs_started_at"), ["started_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("idp_pull_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idp_pull_runs_started_at"))
        batch_op.drop_column("dry_run")
        batch_op.drop_column("members_removed")
        batch_op.drop_column("members_added")
    with op.batch_alter_table("idp_connections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idp_connections_enabled_next_run_at"))
    op.drop_table("idp_connections")
