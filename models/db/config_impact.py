"""Layer: store. Which groups a configuration change may affect (the ``group_ids`` of its
change row).

The worker recomputes exactly the members of these groups, so each helper errs on
the side of including a group whose members' permissions *may* change:

- a workspace's settings: every group bound in any workspace of its environment tree
  (the root and its environments share governance), every group assigned to a Space
  there, and every organization-admin group (admin everywhere, incl. new workspaces);
- a custom role: every group bound to it;
- subset categories / registered resource labels of a workspace: the tree's groups.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.db.config_tables import (
    ConfigWorkspace,
    OrgAdminBindingRow,
    RoleBindingRow,
    SpaceAssignmentRow,
)


def org_admin_groups(session: Session, org_id: str) -> set[str]:
    return set(
        session.scalars(
            select(OrgAdminBindingRow.group_id).where(OrgAdminBindingRow.org_id == org_id)
        )
    )


def workspace_parents(session: Session, org_id: str) -> dict[str, str | None]:
    """Every workspace of the organization -> its parent (None for a root)."""
    return {
        wid: parent
        for wid, parent in session.execute(
            select(ConfigWorkspace.id, ConfigWorkspace.parent_workspace_id).where(
                ConfigWorkspace.org_id == org_id
            )
        )
    }


def root_of(parents: dict[str, str | None], ws_id: str) -> str:
    """The root of ``ws_id``'s environment chain (stops at a dangling parent or a cycle)."""
    seen = {ws_id}
    cur = ws_id
    while (parent := parents.get(cur)) is not None and parent in parents and parent not in seen:
        seen.add(parent)
        cur = parent
    return cur


def workspace_trees(session: Session, org_id: str, ws_ids: Iterable[str]) -> set[str]:
    """``ws_ids`` plus every workspace sharing a root with one of them."""
    parents = workspace_parents(session, org_id)
    wanted = set(ws_ids)
    roots = {root_of(parents, w) for w in wanted if w in parents}
    return wanted | {w for w in parents if root_of(parents, w) in roots}


def groups_bound_in(session: Session, org_id: str, ws_ids: Iterable[str]) -> set[str]:
    """Groups with a role binding in, or a Space assignment inside, any of ``ws_ids``."""
    ids = sorted(set(ws_ids))
    if not ids:
        return set()
    groups = set(
        session.scalars(
            select(RoleBindingRow.group_id).where(
                RoleBindingRow.org_id == org_id, RoleBindingRow.workspace_id.in_(ids)
            )
        )
    )
    groups.update(
        session.scalars(
            select(SpaceAssignmentRow.group_id).where(
                SpaceAssignmentRow.org_id == org_id, SpaceAssignmentRow.workspace_id.in_(ids)
            )
        )
    )
    return groups


def workspace_impact(session: Session, org_id: str, ws_ids: Iterable[str]) -> set[str]:
    """Groups affected by a change to the settings of ``ws_ids`` (trees + org admins)."""
    tree = workspace_trees(session, org_id, ws_ids)
    return groups_bound_in(session, org_id, tree) | org_admin_groups(session, org_id)


def groups_with_role(session: Session, org_id: str, role_id: str) -> set[str]:
    return set(
        session.scalars(
            select(RoleBindingRow.group_id).where(
                RoleBindingRow.org_id == org_id, RoleBindingRow.role_id == role_id
            )
        )
    )


def groups_in_space(session: Session, org_id: str, workspace_id: str, space_id: str) -> set[str]:
    return set(
        session.scalars(
            select(SpaceAssignmentRow.group_id).where(
                SpaceAssignmentRow.org_id == org_id,
                SpaceAssignmentRow.workspace_id == workspace_id,
                SpaceAssignmentRow.space_id == space_id,
            )
        )
    )
