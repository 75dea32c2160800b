"""Layer: store. Manual bindings: organization admins, role bindings (group, role,
workspace), Space assignments, and deleting any of them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.access.inputs import MANUAL
from models.db.config_errors import ConfigError, ConflictError, NotFoundError
from models.db.config_store.context import (
    WriteContext,
    get_group,
    get_space,
    get_workspace,
    record,
    role_model,
    space_key,
    unknown_categories,
)
from models.db.config_tables import (
    ConfigWorkspace,
    CustomRole,
    OrgAdminBindingRow,
    RoleBindingRow,
    SpaceAssignmentRow,
)
from models.db.custom_roles import build_custom_role


def create_org_admin_binding(
    session: Session, ctx: WriteContext, group_id: str
) -> OrgAdminBindingRow:
    get_group(session, ctx.org_id, group_id)
    exists = session.scalar(
        select(OrgAdminBindingRow.id).where(
            OrgAdminBindingRow.org_id == ctx.org_id,
            OrgAdminBindingRow.group_id == group_id,
            OrgAdminBindingRow.source == MANUAL,
        )
    )
    if exists is not None:
        raise ConflictError("group_id", "group is already organization admin (manual binding)")
    row = OrgAdminBindingRow(org_id=ctx.org_id, group_id=group_id, source=MANUAL)
    session.add(row)
    session.flush()
    record(session, ctx, "config.binding.created", "org_admin_binding", row.id, [group_id])
    return row


def create_role_binding(
    session: Session, ctx: WriteContext, group_id: str, workspace_id: str, role_id: str
) -> RoleBindingRow:
    get_group(session, ctx.org_id, group_id)
    ws = get_workspace(session, ctx.org_id, workspace_id, "workspace_id")
    if ws.parent_workspace_id is not None:
        raise ConfigError(
            "workspace_id",
            f"{workspace_id!r} is an environment of {ws.parent_workspace_id!r}; "
            "bind the parent workspace",
        )
    _check_role_for_workspace(session, ctx.org_id, ws, role_id)
    exists = session.scalar(
        select(RoleBindingRow.id).where(
            RoleBindingRow.org_id == ctx.org_id,
            RoleBindingRow.group_id == group_id,
            RoleBindingRow.workspace_id == workspace_id,
            RoleBindingRow.role_id == role_id,
            RoleBindingRow.source == MANUAL,
        )
    )
    if exists is not None:
        raise ConflictError("role_id", "the group already holds this role here (manual binding)")
    row = RoleBindingRow(
        org_id=ctx.org_id,
        group_id=group_id,
        workspace_id=workspace_id,
        role_id=role_id,
        source=MANUAL,
    )
    session.add(row)
    session.flush()
    record(
        session,
        ctx,
        "config.binding.created",
        "role_binding",
        row.id,
        [group_id],
        f"{workspace_id}/{role_id}",
    )
    return row


def change_role_binding(
    session: Session, ctx: WriteContext, binding_id: str, role_id: str
) -> RoleBindingRow:
    """Give a manual role binding another role, in place: one ``config.binding.updated``
    change row naming the binding's group (its members are recomputed). The same role:
    nothing written. Rule-made bindings follow their rule (409)."""
    row = session.get(RoleBindingRow, binding_id) if isinstance(binding_id, str) else None
    if row is None or row.org_id != ctx.org_id:
        raise NotFoundError("id", f"no role binding {binding_id!r}")
    if row.source != MANUAL:
        raise ConflictError(
            "id", f"made by mapping rule {row.source!r}; change or delete the rule instead"
        )
    if row.role_id == role_id:
        return row
    ws = get_workspace(session, ctx.org_id, row.workspace_id, "workspace_id")
    _check_role_for_workspace(session, ctx.org_id, ws, role_id)
    exists = session.scalar(
        select(RoleBindingRow.id).where(
            RoleBindingRow.org_id == ctx.org_id,
            RoleBindingRow.group_id == row.group_id,
            RoleBindingRow.workspace_id == row.workspace_id,
            RoleBindingRow.role_id == role_id,
            RoleBindingRow.source == MANUAL,
        )
    )
    if exists is not None:
        raise ConflictError(
            "role_id", f"the group already holds {role_id!r} here (manual binding {exists})"
        )
    old_role, row.role_id = row.role_id, role_id
    session.flush()
    record(
        session,
        ctx,
        "config.binding.updated",
        "role_binding",
        row.id,
        [row.group_id],
        f"{row.workspace_id}/{old_role} -> {role_id}",
    )
    return row


def _check_role_for_workspace(
    session: Session, org_id: str, ws: ConfigWorkspace, role_id: str
) -> None:
    """A role bound in ``ws`` must exist, be of the workspace's permissions model, and
    limit subsets only by categories the workspace has."""
    model = role_model(session, org_id, role_id)
    if model != ws.permissions_model:
        raise ConfigError(
            "role_id",
            f"{model} role {role_id!r} cannot be bound in a {ws.permissions_model} workspace",
        )
    row = session.get(CustomRole, (org_id, role_id))
    if row is None or row.model != "v2":
        return  # built-in roles have no subset limits
    role = build_custom_role(row.id, row.name, row.model, row.definition)
    bad = unknown_categories(session, org_id, ws.id, role)
    if bad:
        raise ConfigError("role_id", f"role {role_id!r} {bad[0].field}: {bad[0].message(ws.id)}")


def create_space_assignment(
    session: Session, ctx: WriteContext, group_id: str, workspace_id: str, space_id: str
) -> SpaceAssignmentRow:
    """Assign a group to the Space ``space_id`` of workspace ``workspace_id``."""
    get_group(session, ctx.org_id, group_id)
    get_workspace(session, ctx.org_id, workspace_id, "workspace_id")
    get_space(session, ctx.org_id, workspace_id, space_id, "space_id")
    exists = session.scalar(
        select(SpaceAssignmentRow.id).where(
            SpaceAssignmentRow.org_id == ctx.org_id,
            SpaceAssignmentRow.group_id == group_id,
            SpaceAssignmentRow.workspace_id == workspace_id,
            SpaceAssignmentRow.space_id == space_id,
            SpaceAssignmentRow.source == MANUAL,
        )
    )
    if exists is not None:
        raise ConflictError("space_id", "the group is already assigned to this Space")
    row = SpaceAssignmentRow(
        org_id=ctx.org_id,
        group_id=group_id,
        workspace_id=workspace_id,
        space_id=space_id,
        source=MANUAL,
    )
    session.add(row)
    session.flush()
    record(
        session,
        ctx,
        "config.binding.created",
        "space_assignment",
        row.id,
        [group_id],
        space_key(workspace_id, space_id),
    )
    return row


BindingRow = OrgAdminBindingRow | RoleBindingRow | SpaceAssignmentRow


def delete_binding(session: Session, ctx: WriteContext, kind: str, binding_id: str) -> None:
    """Delete a manual binding of ``kind`` (org_admin_binding, role_binding, space_assignment)."""
    row: BindingRow | None
    if kind == "org_admin_binding":
        row = session.get(OrgAdminBindingRow, binding_id)
    elif kind == "role_binding":
        row = session.get(RoleBindingRow, binding_id)
    else:
        row = session.get(SpaceAssignmentRow, binding_id)
    if row is None or row.org_id != ctx.org_id:
        raise NotFoundError("id", f"no {kind.replace('_', ' ')} {binding_id!r}")
    if row.source != MANUAL:
        raise ConflictError(
            "id", f"made by mapping rule {row.source!r}; change or delete the rule instead"
        )
    group_id = row.group_id
    session.delete(row)
    session.flush()
    record(session, ctx, "config.binding.deleted", kind, binding_id, [group_id])
