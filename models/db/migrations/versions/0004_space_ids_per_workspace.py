"""Space ids are unique per workspace, not per organization.

Two workspaces may both have a Space `UK`. A Space's key becomes
`(org_id, workspace_id, id)` and a Space assignment names the workspace too:

- `space_assignments.workspace_id` is added and filled from each assignment's Space
  (ids were unique per organization, so every assignment has exactly one);
- the assignment's foreign key becomes `(org_id, workspace_id, space_id)` ->
  `spaces (org_id, workspace_id, id)` (ON DELETE CASCADE, as before), its unique key
  `(group_id, workspace_id, space_id, source)` and its index
  `(org_id, workspace_id, space_id)`;
- `spaces`' primary key becomes `(org_id, workspace_id, id)`; its `(org_id,
  workspace_id)` index goes (the key's prefix serves those queries).

Existing data survives unchanged. Batch operations: plain ALTERs on PostgreSQL, a
copy of each table on SQLite (foreign keys are off during migrations there and
checked afterwards, `models.db.migrate`).

Downgrade restores the per-organization key; it refuses (naming them) while two
workspaces of one organization have Spaces with the same id.

Revision ID: 0004_space_ids_per_workspace
Revises: 0003_users_page_index
Create Date: 2026-12-03 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_space_ids_per_workspace"
down_revision: str | Sequence[str] | None = "0003_users_page_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("space_assignments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("workspace_id", sa.String(length=36), nullable=True))
    op.execute(
        "UPDATE space_assignments SET workspace_id = (SELECT spaces.workspace_id FROM spaces"
        " WHERE spaces.org_id = space_assignments.org_id"
        " AND spaces.id = space_assignments.space_id)"
    )
    # an assignment whose Space is gone (cannot happen with the cascade) has nothing to name
    op.execute("DELETE FROM space_assignments WHERE workspace_id IS NULL")
    with op.batch_alter_table("space_assignments", schema=None) as batch_op:
        batch_op.drop_constraint("fk_space_assignments_space", type_="foreignkey")
        batch_op.drop_constraint(
            batch_op.f("uq_space_assignments_group_id_space_id_source"), type_="unique"
        )
        batch_op.drop_index(batch_op.f("ix_space_assignments_org_id_space_id"))

    with op.batch_alter_table("spaces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_spaces_org_id_workspace_id"))
        batch_op.drop_constraint(batch_op.f("pk_spaces"), type_="primary")
        batch_op.create_primary_key(batch_op.f("pk_spaces"), ["org_id", "workspace_id", "id"])

    with op.batch_alter_table("space_assignments", schema=None) as batch_op:
        batch_op.alter_column("workspace_id", existing_type=sa.String(length=36), nullable=False)
        batch_op.create_foreign_key(
            "fk_space_assignments_space",
            "spaces",
            ["org_id", "workspace_id", "space_id"],
            ["org_id", "workspace_id", "id"],
            ondelete="CASCADE",
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_space_assignments_group_id_workspace_id_space_id_source"),
            ["group_id", "workspace_id", "space_id", "source"],
        )
        batch_op.create_index(
            batch_op.f("ix_space_assignments_org_id_workspace_id_space_id"),
            ["org_id", "workspace_id", "space_id"],
            unique=False,
        )


def downgrade() -> None:
    clash = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT org_id, id FROM spaces GROUP BY org_id, id HAVING COUNT(*) > 1"
                " ORDER BY org_id, id"
            )
        )
        .fetchall()
    )
    if clash:
        named = ", ".join(f"{org}/{space}" for org, space in clash[:10])
        raise RuntimeError(
            "cannot downgrade below 0004_space_ids_per_workspace: Space ids used in more "
            f"than one workspace of an organization ({named}); rename them first"
        )
    with op.batch_alter_table("space_assignments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_space_assignments_org_id_workspace_id_space_id"))
        batch_op.drop_constraint(
            batch_op.f("uq_space_assignments_group_id_workspace_id_space_id_source"),
            type_="unique",
        )
        batch_op.drop_constraint("fk_space_assignments_space", type_="foreignkey")

    with op.batch_alter_table("spaces", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("pk_spaces"), type_="primary")
        batch_op.create_primary_key(batch_op.f("pk_spaces"), ["org_id", "id"])
        batch_op.create_index(
            batch_op.f("ix_spaces_org_id_workspace_id"), ["org_id", "workspace_id"], unique=False
        )

    with op.batch_alter_table("space_assignments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_space_assignments_org_id_space_id"), ["org_id", "space_id"], unique=False
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_space_assignments_group_id_space_id_source"),
            ["group_id", "space_id", "source"],
        )
        batch_op.create_foreign_key(
            "fk_space_assignments_space",
            "spaces",
            ["org_id", "space_id"],
            ["org_id", "id"],
            ondelete="CASCADE",
        )
        batch_op.drop_column("workspace_id")
