"""The SCIM request log and the IdP pull runs (sync status, `idsync scim log`).

Two new tables, nothing existing changes: `scim_request_log` (one row per SCIM request,
body redacted; pruned by age and count on a schedule) and `idp_pull_runs` (one row per
IdP pull run). Both are written off the request path, so the migration can run while
the previous version serves.

Revision ID: 0005_request_log_pull_runs
Revises: 0004_space_ids_per_workspace
Create Date: 2026-12-10 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_request_log_pull_runs"
down_revision: str | Sequence[str] | None = "0004_space_ids_per_workspace"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "scim_request_log",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=True),
        sa.Column("token_id", sa.String(length=36), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("route", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("scim_type", sa.String(length=32), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("idp", sa.String(length=32), nullable=False),
        sa.Column("user_agent", sa.String(length=256), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("resource_type", sa.String(length=16), nullable=True),
        sa.Column("resource_id", sa.String(length=64), nullable=True),
        sa.Column("revision", sa.BigInteger(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_scim_request_log_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scim_request_log")),
    )
    with op.batch_alter_table("scim_request_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_scim_request_log_at"), ["at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_scim_request_log_org_id_at"), ["org_id", "at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_scim_request_log_org_id_resource_id"),
            ["org_id", "resource_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_scim_request_log_org_id_token_id_at"),
            ["org_id", "token_id", "at"],
            unique=False,
        )

    op.create_table(
        "idp_pull_runs",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("connection", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("upstream_users", sa.Integer(), nullable=False),
        sa.Column("upstream_groups", sa.Integer(), nullable=False),
        sa.Column("users_created", sa.Integer(), nullable=False),
        sa.Column("users_updated", sa.Integer(), nullable=False),
        sa.Column("users_deactivated", sa.Integer(), nullable=False),
        sa.Column("groups_created", sa.Integer(), nullable=False),
        sa.Column("groups_updated", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("upstream_status", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_idp_pull_runs_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idp_pull_runs")),
    )
    with op.batch_alter_table("idp_pull_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idp_pull_runs_org_id_connection_started_at"),
            ["org_id", "connection", "started_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("idp_pull_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idp_pull_runs_org_id_connection_started_at"))
    op.drop_table("idp_pull_runs")
    with op.batch_alter_table("scim_request_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scim_request_log_org_id_token_id_at"))
        batch_op.drop_index(batch_op.f("ix_scim_request_log_org_id_resource_id"))
        batch_op.drop_index(batch_op.f("ix_scim_request_log_org_id_at"))
        batch_op.drop_index(batch_op.f("ix_scim_request_log_at"))
    op.drop_table("scim_request_log")
