"""Layer: store. Manual bindings: organization admins, role bindings (group, role,
workspace), Space assignments, and deleting any of them.

A role binding and a Space assignment are one shape, a group bound to something inside
a workspace (a role, a Space): one implementation (``_InWorkspace``) serves both, told
apart by the row type and the column naming what is bound."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

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

BindingRow = OrgAdminBindingRow | RoleBindingRow | SpaceAssignmentRow
_ROWS: dict[str, type[BindingRow]] = {
    "org_admin_binding": OrgAdminBindingRow,
    "role_binding": RoleBindingRow,
    "space_assignment": SpaceAssignmentRow,
}
_Row = TypeVar("_Row", RoleBindingRow, SpaceAssignmentRow)
_Binding = TypeVar("_Binding", bound=BindingRow)


@dataclass(frozen=True)
class _InWorkspace(Generic[_Row]):
    """A group bound to something inside a workspace: ``target`` is the column naming
    it (``role_id``, ``space_id``), ``kind`` the change rows' resource type."""

    kind: str
    row: type[_Row]
    target: str

    def manual_id(
        self, session: Session, org_id: str, group_id: str, workspace_id: str, target_id: str
    ) -> str | None:
        """The id of the group's manual binding to ``target_id`` in the workspace, if any."""
        row = self.row
        return session.scalar(
            select(row.id).where(
                row.org_id == org_id,
                row.group_id == group_id,
                row.workspace_id == workspace_id,
                getattr(row, self.target) == target_id,
                row.source == MANUAL,
            )
        )

    def create(
        self,
        session: Session,
        ctx: WriteContext,
        group_id: str,
        workspace_id: str,
        target_id: str,
        *,
        conflict: str,
        summary: str,
    ) -> _Row:
        """Add the manual binding (``conflict``: the 409's message when it exists) and
        its ``config.binding.created`` change row."""
        if self.manual_id(session, ctx.org_id, group_id, workspace_id, target_id) is not None:
            raise ConflictError(self.target, conflict)
        row = self.row(
            org_id=ctx.org_id,
            group_id=group_id,
            workspace_id=workspace_id,
            source=MANUAL,
            **{self.target: target_id},
        )
        session.add(row)
        session.flush()
        record(session, ctx, "config.binding.created", self.kind, row.id, [group_id], summary)
        return row


_ROLE_BINDING = _InWorkspace("role_binding", RoleBindingRow, "role_id")
_SPACE_ASSIGNMENT = _InWorkspace("space_assignment", SpaceAssignmentRow, "space_id")


def _manual_row(
    session: Session, ctx: WriteContext, rows: type[_Binding], kind: str, binding_id: str
) -> _Binding:
    """The organization's binding ``binding_id`` of ``kind`` (in table ``rows``): 404
    when there is none, 409 when a mapping rule made it (it follows its rule)."""
    row = session.get(rows, binding_id) if isinstance(binding_id, str) else None
    if row is None or row.org_id != ctx.org_id:
        raise NotFoundError("id", f"no {kind.replace('_', ' ')} {binding_id!r}")
    if row.source != MANUAL:
        raise ConflictError(
            "id", f"made by mapping rule {row.source!r}; change or delete the rule instead"
        )
    return row


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
    return _ROLE_BINDING.create(
        session,
        ctx,
        group_id,
        workspace_id,
        role_id,
        conflict="the group already holds this role here (manual binding)",
        summary=f"{workspace_id}/{role_id}",
    )


def change_role_binding(
    session: Session, ctx: WriteContext, binding_id: str, role_id: str
) -> RoleBindingRow:
    """Give a manual role binding another role, in place: one ``config.binding.updated``
    change row naming the binding's group (its members are recomputed). The same role:
    nothing written. Rule-made bindings follow their rule (409)."""
    row = _manual_row(session, ctx, RoleBindingRow, "role_binding", binding_id)
    if row.role_id == role_id:
        return row
    ws = get_workspace(session, ctx.org_id, row.workspace_id, "workspace_id")
    _check_role_for_workspace(session, ctx.org_id, ws, role_id)
    exists = _ROLE_BINDING.manual_id(session, ctx.org_id, row.group_id, row.workspace_id, role_id)
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
    return _SPACE_ASSIGNMENT.create(
        session,
        ctx,
        group_id,
        workspace_id,
        space_id,
        conflict="the group is already assigned to this Space",
        summary=space_key(workspace_id, space_id),
    )


def delete_binding(session: Session, ctx: WriteContext, kind: str, binding_id: str) -> None:
    """Delete a manual binding of ``kind`` (org_admin_binding, role_binding, space_assignment)."""
    row = _manual_row(session, ctx, _ROWS[kind], kind, binding_id)
    group_id = row.group_id
    session.delete(row)
    session.flush()
    record(session, ctx, "config.binding.deleted", kind, binding_id, [group_id])
