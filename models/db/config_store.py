"""Writes to the access configuration, shared by the admin API and ``idsync apply``.

Every public write:
- validates first (``ConfigError`` naming the field; nothing is written, and the
  caller's transaction rolls back anything already flushed);
- re-applies the mapping rules when the change can alter what rules produce
  (targets appearing or vanishing), unless ``ctx.defer_rules`` (``idsync apply``
  re-applies once at the end): a rule write re-applies that rule, a workspace, Space
  or role write only the (rule, group) pairs it can change
  (``models.db.rule_application.reapply_for_targets``);
- records exactly one change row as its last statement, naming every group whose
  members' permissions may change (``models.db.config_impact``), so the worker can
  recompute exactly those users.

Ids of workspaces, Spaces, custom roles and rules: 1-36 characters of letters,
digits, ``_ . -``, starting with a letter or digit (admin-chosen slugs or UUIDs).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from models.access.catalogue import BUILTIN_ROLES
from models.access.errors import ValidationError
from models.access.grants import LEGACY_RESOURCE_TYPES, RESOURCE_SCOPES
from models.access.inputs import MANUAL
from models.access.mapping_rules import validate_mapping_rule
from models.access.roles import Role, V2Role
from models.access.subsets import UnknownLimitCategory, unknown_limit_categories
from models.db.base import utcnow
from models.db.config_errors import ConfigError, ConflictError, NotFoundError
from models.db.config_impact import (
    groups_in_space,
    groups_with_role,
    workspace_impact,
    workspace_parents,
)
from models.db.config_tables import (
    ConfigSpace,
    ConfigWorkspace,
    CustomRole,
    MappingRuleRow,
    OrgAdminBindingRow,
    RegisteredResourceRow,
    RoleBindingRow,
    SpaceAssignmentRow,
    SubsetCategoryRow,
)
from models.db.custom_roles import build_custom_role
from models.db.database import record_change
from models.db.rule_application import (
    RuleApplication,
    TargetKind,
    apply_mapping_rules,
    reapply_for_targets,
    rule_from_row,
)
from models.db.tables import Group

ID_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,35}$")
PERMISSIONS_MODELS: Final = ("v2", "legacy")
RESOURCE_TYPES: Final[frozenset[str]] = frozenset((*LEGACY_RESOURCE_TYPES, *RESOURCE_SCOPES))


@dataclass(frozen=True)
class WriteContext:
    """Who writes, for which organization."""

    org_id: str
    actor: str
    request_id: str | None = None
    defer_rules: bool = False


# --- helpers ------------------------------------------------------------------------


def check_id(value: str, field: str) -> str:
    if not isinstance(value, str) or not ID_RE.match(value):
        raise ConfigError(
            field, "must be 1-36 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    return value


def _record(
    session: Session,
    ctx: WriteContext,
    kind: str,
    resource_type: str,
    resource_id: str | None,
    groups: Iterable[str],
    summary: str = "",
) -> int:
    return record_change(
        session,
        org_id=ctx.org_id,
        kind=kind,
        resource_type=resource_type,
        resource_id=resource_id,
        actor=ctx.actor,
        group_ids=sorted(set(groups)),
        request_id=ctx.request_id,
        summary=summary,
    )


def _reapply_targets(
    session: Session, ctx: WriteContext, target: TargetKind, *keys: str
) -> RuleApplication:
    """Re-apply what the rules make of a target that may have appeared, vanished or
    changed (``keys``: its id and names before and after the write)."""
    if ctx.defer_rules:
        return RuleApplication()
    return reapply_for_targets(
        session, ctx.org_id, target, set(keys), actor=ctx.actor, request_id=ctx.request_id
    )


def _reapply_rule(session: Session, ctx: WriteContext, rule_id: str) -> RuleApplication:
    """Re-apply one rule to every group (it was created, changed or deleted)."""
    if ctx.defer_rules:
        return RuleApplication()
    return apply_mapping_rules(
        session,
        ctx.org_id,
        rule_ids={rule_id},
        actor=ctx.actor,
        request_id=ctx.request_id,
        record=False,
    )


def get_workspace(session: Session, org_id: str, ws_id: str, field: str = "id") -> ConfigWorkspace:
    ws = session.get(ConfigWorkspace, (org_id, ws_id))
    if ws is None:
        cls = NotFoundError if field == "id" else ConfigError
        raise cls(field, f"no workspace {ws_id!r} in this organization")
    return ws


def get_space(
    session: Session, org_id: str, workspace_id: str, space_id: str, field: str = "id"
) -> ConfigSpace:
    """The Space ``space_id`` of workspace ``workspace_id`` (Space ids are unique per
    workspace); NotFoundError (404) for a path ``field`` ``id``, else ConfigError (422)."""
    sp = session.get(ConfigSpace, (org_id, workspace_id, space_id))
    if sp is None:
        cls = NotFoundError if field == "id" else ConfigError
        raise cls(field, f"no Space {space_id!r} in workspace {workspace_id!r}")
    return sp


def get_group(session: Session, org_id: str, group_id: str, field: str = "group_id") -> Group:
    group = session.get(Group, group_id) if isinstance(group_id, str) else None
    if group is None or group.org_id != org_id:
        raise ConfigError(field, f"no group {group_id!r} in this organization")
    return group


def role_model(session: Session, org_id: str, role_id: str, field: str = "role_id") -> str:
    """The permissions model of a built-in or custom role; ConfigError if unknown."""
    builtin = BUILTIN_ROLES.get(role_id)
    if builtin is not None:
        return builtin.model
    row = session.get(CustomRole, (org_id, role_id))
    if row is None:
        raise ConfigError(field, f"no role {role_id!r} (built-in or custom) in this organization")
    return row.model


# --- workspaces -----------------------------------------------------------------------


@dataclass(frozen=True)
class WorkspaceSpec:
    id: str
    name: str = ""
    permissions_model: str = "v2"
    spaces_enabled: bool = False
    approvals_required: bool = False
    parent_workspace_id: str | None = None


def _validate_workspace(session: Session, ctx: WriteContext, spec: WorkspaceSpec) -> None:
    check_id(spec.id, "id")
    if spec.permissions_model not in PERMISSIONS_MODELS:
        raise ConfigError("permissions_model", "must be 'v2' or 'legacy'")
    if spec.parent_workspace_id is not None:
        if spec.parent_workspace_id == spec.id:
            raise ConfigError("parent_workspace_id", "a workspace cannot be its own environment")
        get_workspace(session, ctx.org_id, spec.parent_workspace_id, "parent_workspace_id")
        parents = workspace_parents(session, ctx.org_id)
        parents[spec.id] = spec.parent_workspace_id
        seen = {spec.id}
        cur: str | None = spec.parent_workspace_id
        while cur is not None:
            if cur in seen:
                raise ConfigError("parent_workspace_id", "environment links would form a cycle")
            seen.add(cur)
            cur = parents.get(cur)


def create_workspace(session: Session, ctx: WriteContext, spec: WorkspaceSpec) -> ConfigWorkspace:
    _validate_workspace(session, ctx, spec)
    if session.get(ConfigWorkspace, (ctx.org_id, spec.id)) is not None:
        raise ConflictError("id", f"workspace {spec.id!r} already exists")
    now = utcnow()
    ws = ConfigWorkspace(
        org_id=ctx.org_id,
        id=spec.id,
        name=spec.name,
        permissions_model=spec.permissions_model,
        spaces_enabled=spec.spaces_enabled,
        approvals_required=spec.approvals_required,
        parent_workspace_id=spec.parent_workspace_id,
        created_at=now,
        updated_at=now,
    )
    session.add(ws)
    session.flush()
    rules = _reapply_targets(session, ctx, "workspace", spec.id, spec.name)
    groups = workspace_impact(session, ctx.org_id, [spec.id]) | rules.affected_group_ids
    _record(session, ctx, "config.workspace.created", "workspace", spec.id, groups, spec.name)
    return ws


def update_workspace(session: Session, ctx: WriteContext, spec: WorkspaceSpec) -> ConfigWorkspace:
    """Replace a workspace's settings (no change: nothing written, no change row)."""
    ws = get_workspace(session, ctx.org_id, spec.id)
    _validate_workspace(session, ctx, spec)
    values = {
        "name": spec.name,
        "permissions_model": spec.permissions_model,
        "spaces_enabled": spec.spaces_enabled,
        "approvals_required": spec.approvals_required,
        "parent_workspace_id": spec.parent_workspace_id,
    }
    changed = {k: v for k, v in values.items() if getattr(ws, k) != v}
    if not changed:
        return ws
    trees_before = [spec.id] + ([ws.parent_workspace_id] if ws.parent_workspace_id else [])
    before = workspace_impact(session, ctx.org_id, trees_before)
    old_name = ws.name
    for key, value in changed.items():
        setattr(ws, key, value)
    ws.updated_at = utcnow()
    session.flush()
    rules = _reapply_targets(session, ctx, "workspace", spec.id, old_name, spec.name)
    after = workspace_impact(session, ctx.org_id, [spec.id])
    summary = ", ".join(f"{k}={v}" for k, v in sorted(changed.items()))
    _record(
        session,
        ctx,
        "config.workspace.updated",
        "workspace",
        spec.id,
        before | after | rules.affected_group_ids,
        summary,
    )
    return ws


def delete_workspace(session: Session, ctx: WriteContext, ws_id: str) -> None:
    """Delete a workspace with its Spaces, bindings, subset categories and resources."""
    ws_name = get_workspace(session, ctx.org_id, ws_id).name
    children = sorted(
        session.scalars(
            select(ConfigWorkspace.id).where(
                ConfigWorkspace.org_id == ctx.org_id, ConfigWorkspace.parent_workspace_id == ws_id
            )
        )
    )
    if children:
        raise ConflictError("id", f"workspace has environments: {', '.join(children)}")
    groups = workspace_impact(session, ctx.org_id, [ws_id])
    for table in (
        SpaceAssignmentRow,
        RoleBindingRow,
        SubsetCategoryRow,
        RegisteredResourceRow,
        ConfigSpace,
    ):
        session.execute(
            delete(table).where(table.org_id == ctx.org_id, table.workspace_id == ws_id)
        )
    session.execute(
        delete(ConfigWorkspace).where(
            ConfigWorkspace.org_id == ctx.org_id, ConfigWorkspace.id == ws_id
        )
    )
    session.expire_all()
    rules = _reapply_targets(session, ctx, "workspace", ws_id, ws_name)
    _record(
        session,
        ctx,
        "config.workspace.deleted",
        "workspace",
        ws_id,
        groups | rules.affected_group_ids,
    )


# --- Spaces -----------------------------------------------------------------------------


def create_space(
    session: Session, ctx: WriteContext, space_id: str, workspace_id: str, name: str = ""
) -> ConfigSpace:
    check_id(space_id, "id")
    ws = get_workspace(session, ctx.org_id, workspace_id, "workspace_id")
    if ws.parent_workspace_id is not None:
        raise ConfigError("workspace_id", "environments share their parent workspace's Spaces")
    if session.get(ConfigSpace, (ctx.org_id, workspace_id, space_id)) is not None:
        raise ConflictError("id", f"Space {space_id!r} already exists in {workspace_id!r}")
    space = ConfigSpace(org_id=ctx.org_id, id=space_id, workspace_id=workspace_id, name=name)
    session.add(space)
    session.flush()
    rules = _reapply_targets(session, ctx, "space", space_id, name)
    _record(
        session,
        ctx,
        "config.space.created",
        "space",
        space_key(workspace_id, space_id),
        rules.affected_group_ids,
        name,
    )
    return space


def space_key(workspace_id: str, space_id: str) -> str:
    """How change rows and rule results name a Space: ``<workspace>/<space>``."""
    return f"{workspace_id}/{space_id}"


def update_space(
    session: Session, ctx: WriteContext, workspace_id: str, space_id: str, name: str
) -> ConfigSpace:
    """Rename a Space (a Space never moves to another workspace)."""
    space = get_space(session, ctx.org_id, workspace_id, space_id)
    if space.name == name:
        return space
    old_name, space.name = space.name, name
    session.flush()
    rules = _reapply_targets(session, ctx, "space", space_id, old_name, name)
    _record(
        session,
        ctx,
        "config.space.updated",
        "space",
        space_key(workspace_id, space_id),
        rules.affected_group_ids,
        name,
    )
    return space


def delete_space(session: Session, ctx: WriteContext, workspace_id: str, space_id: str) -> None:
    space_name = get_space(session, ctx.org_id, workspace_id, space_id).name
    groups = groups_in_space(session, ctx.org_id, workspace_id, space_id)
    session.execute(
        delete(SpaceAssignmentRow).where(
            SpaceAssignmentRow.org_id == ctx.org_id,
            SpaceAssignmentRow.workspace_id == workspace_id,
            SpaceAssignmentRow.space_id == space_id,
        )
    )
    session.execute(
        delete(ConfigSpace).where(
            ConfigSpace.org_id == ctx.org_id,
            ConfigSpace.workspace_id == workspace_id,
            ConfigSpace.id == space_id,
        )
    )
    session.expire_all()
    rules = _reapply_targets(session, ctx, "space", space_id, space_name)
    _record(
        session,
        ctx,
        "config.space.deleted",
        "space",
        space_key(workspace_id, space_id),
        groups | rules.affected_group_ids,
    )


# --- custom roles ---------------------------------------------------------------------


def check_unique(values: object, where: str, what: str) -> None:
    """A list given twice the same string is refused (naming the repeat), not folded."""
    if not isinstance(values, list):
        return  # models.access says what is wrong with it
    seen: set[str] = set()
    for j, value in enumerate(values):
        if not isinstance(value, str):
            continue  # models.access says what is wrong with it
        if value in seen:
            raise ConfigError(f"{where}[{j}]", f"{what} {value!r} is listed twice")
        seen.add(value)


def _check_definition(definition: Mapping[str, Any]) -> None:
    """What ``models.access`` parsing would fold or coerce silently: repeated grants,
    actions and resource grants (a role of 10,000 copies of one grant), and a
    ``resource_id`` that is not a string (``null`` became the id ``"None"``)."""
    check_unique(definition.get("workspace_grants"), "workspace_grants", "grant")
    grants = definition.get("resource_grants")
    targets: dict[tuple[str, str], int] = {}
    for i, item in enumerate(grants if isinstance(grants, list) else []):
        if not isinstance(item, Mapping):
            continue
        where = f"resource_grants[{i}]"
        rid = item.get("resource_id")
        if "resource_id" in item and not isinstance(rid, str):
            raise ConfigError(f"{where}.resource_id", "must be a resource id or '*'")
        check_unique(item.get("grants"), f"{where}.grants", "grant")
        target = (str(item.get("scope")), str(rid))
        if target in targets:
            raise ConfigError(
                where, f"repeats the scope and resource_id of resource_grants[{targets[target]}]"
            )
        targets[target] = i
    statements = definition.get("statements")
    for i, st in enumerate(statements if isinstance(statements, list) else []):
        if isinstance(st, Mapping):
            check_unique(st.get("actions"), f"statements[{i}].actions", "action")


def validate_role(role_id: str, name: str, model: str, definition: Mapping[str, Any]) -> Role:
    """``models.access`` validation; raises ConfigError naming the field of the request."""
    check_id(role_id, "id")
    _check_definition(definition)
    try:
        return build_custom_role(role_id, name, model, definition)
    except ValidationError as exc:
        raise ConfigError(exc.field, exc.message) from exc


def _check_bound_subsets(session: Session, org_id: str, role: Role) -> None:
    """A role's subset limits name only categories of every workspace it is bound in
    (manual or rule-made bindings); else ConfigError naming the limit's field."""
    bound = session.scalars(
        select(RoleBindingRow.workspace_id)
        .where(RoleBindingRow.org_id == org_id, RoleBindingRow.role_id == role.id)
        .distinct()
        .order_by(RoleBindingRow.workspace_id)
    )
    for ws_id in bound:
        bad = _unknown_categories(session, org_id, ws_id, role)
        if bad:
            raise ConfigError(bad[0].field, f"bound in {ws_id!r}: {bad[0].message(ws_id)}")


def create_role(
    session: Session,
    ctx: WriteContext,
    role_id: str,
    *,
    name: str,
    model: str,
    definition: Mapping[str, Any],
) -> CustomRole:
    validate_role(role_id, name, model, definition)
    if session.get(CustomRole, (ctx.org_id, role_id)) is not None:
        raise ConflictError("id", f"role {role_id!r} already exists")
    now = utcnow()
    row = CustomRole(
        org_id=ctx.org_id,
        id=role_id,
        name=name,
        model=model,
        definition=dict(definition),
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    rules = _reapply_targets(session, ctx, "role", role_id, name)
    _record(session, ctx, "config.role.created", "role", role_id, rules.affected_group_ids, name)
    return row


def update_role(
    session: Session,
    ctx: WriteContext,
    role_id: str,
    *,
    name: str,
    model: str,
    definition: Mapping[str, Any],
) -> CustomRole:
    """Replace a custom role (no change: nothing written). Built-in roles are read-only."""
    if role_id in BUILTIN_ROLES:
        raise ConfigError("id", f"{role_id!r} is a built-in role and cannot be changed")
    row = session.get(CustomRole, (ctx.org_id, role_id))
    if row is None:
        raise NotFoundError("id", f"no custom role {role_id!r} in this organization")
    role = validate_role(role_id, name, model, definition)
    if row.name == name and row.model == model and row.definition == dict(definition):
        return row
    _check_bound_subsets(session, ctx.org_id, role)
    if model != row.model:
        manual = _manual_bindings_of_role(session, ctx.org_id, role_id)
        if manual:
            raise ConflictError("model", f"role is bound by {manual} manual binding(s)")
    old_name = row.name
    row.name, row.model, row.definition, row.updated_at = name, model, dict(definition), utcnow()
    session.flush()
    groups = groups_with_role(session, ctx.org_id, role_id)
    rules = _reapply_targets(session, ctx, "role", role_id, old_name, name)
    _record(
        session,
        ctx,
        "config.role.updated",
        "role",
        role_id,
        groups | rules.affected_group_ids,
        name,
    )
    return row


def _manual_bindings_of_role(session: Session, org_id: str, role_id: str) -> int:
    """How many manual role bindings use `role_id` (rule-made ones follow the rules)."""
    count = session.scalar(
        select(func.count())
        .select_from(RoleBindingRow)
        .where(
            RoleBindingRow.org_id == org_id,
            RoleBindingRow.role_id == role_id,
            RoleBindingRow.source == MANUAL,
        )
    )
    return int(count or 0)


def delete_role(session: Session, ctx: WriteContext, role_id: str) -> None:
    """Delete a custom role; refused while manual bindings use it (rule-made ones go)."""
    if role_id in BUILTIN_ROLES:
        raise ConfigError("id", f"{role_id!r} is a built-in role and cannot be deleted")
    role = session.get(CustomRole, (ctx.org_id, role_id))
    if role is None:
        raise NotFoundError("id", f"no custom role {role_id!r} in this organization")
    role_name = role.name
    manual = _manual_bindings_of_role(session, ctx.org_id, role_id)
    if manual:
        raise ConflictError("id", f"role is bound by {manual} manual binding(s); delete them first")
    groups = groups_with_role(session, ctx.org_id, role_id)
    session.execute(
        delete(CustomRole).where(CustomRole.org_id == ctx.org_id, CustomRole.id == role_id)
    )
    session.execute(
        delete(RoleBindingRow).where(
            RoleBindingRow.org_id == ctx.org_id, RoleBindingRow.role_id == role_id
        )
    )
    session.expire_all()
    rules = _reapply_targets(session, ctx, "role", role_id, role_name)
    _record(session, ctx, "config.role.deleted", "role", role_id, groups | rules.affected_group_ids)


# --- manual bindings ----------------------------------------------------------------------


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
    _record(session, ctx, "config.binding.created", "org_admin_binding", row.id, [group_id])
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
    _record(
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
    _record(
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
    bad = _unknown_categories(session, org_id, ws.id, role)
    if bad:
        raise ConfigError("role_id", f"role {role_id!r} {bad[0].field}: {bad[0].message(ws.id)}")


def _unknown_categories(
    session: Session, org_id: str, workspace_id: str, role: Role
) -> list[UnknownLimitCategory]:
    """Subset limits of ``role`` naming a category workspace ``workspace_id`` lacks."""
    if not isinstance(role, V2Role) or not any(g.subset_limit for g in role.resource_grants):
        return []
    names: dict[str, list[str]] = {}
    for pm, name in session.execute(
        select(SubsetCategoryRow.parent_model_id, SubsetCategoryRow.name).where(
            SubsetCategoryRow.org_id == org_id, SubsetCategoryRow.workspace_id == workspace_id
        )
    ):
        names.setdefault(pm, []).append(name)
    grants = [(g.scope, g.resource_id, g.subset_limit) for g in role.resource_grants]
    return unknown_limit_categories(grants, names)


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
    _record(
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
    _record(session, ctx, "config.binding.deleted", kind, binding_id, [group_id])


# --- subset categories and registered resources --------------------------------------------


def set_subset_categories(
    session: Session,
    ctx: WriteContext,
    workspace_id: str,
    parent_model_id: str,
    categories: Sequence[tuple[str, bool]],
) -> bool:
    """Replace the subset categories of a parent model; returns whether anything changed."""
    get_workspace(session, ctx.org_id, workspace_id, "workspace_id")
    if not parent_model_id or len(parent_model_id) > 255:
        raise ConfigError("parent_model_id", "must be 1-255 characters")
    wanted: dict[str, bool] = {}
    for i, (name, required) in enumerate(categories):
        if not name or len(name) > 100:
            raise ConfigError(f"categories[{i}].name", "must be 1-100 characters")
        if name in wanted:
            raise ConfigError(f"categories[{i}].name", f"duplicate category {name!r}")
        wanted[name] = bool(required)
    where = (
        SubsetCategoryRow.org_id == ctx.org_id,
        SubsetCategoryRow.workspace_id == workspace_id,
        SubsetCategoryRow.parent_model_id == parent_model_id,
    )
    current = {
        name: req
        for name, req in session.execute(
            select(SubsetCategoryRow.name, SubsetCategoryRow.required).where(*where)
        )
    }
    if current == wanted:
        return False
    session.execute(delete(SubsetCategoryRow).where(*where))
    for name, required in sorted(wanted.items()):
        session.add(
            SubsetCategoryRow(
                org_id=ctx.org_id,
                workspace_id=workspace_id,
                parent_model_id=parent_model_id,
                name=name,
                required=required,
            )
        )
    session.flush()
    groups = workspace_impact(session, ctx.org_id, [workspace_id])
    _record(
        session,
        ctx,
        "config.subsets.updated",
        "subset_categories",
        workspace_id,
        groups,
        f"{parent_model_id}: {', '.join(sorted(wanted)) or '(none)'}",
    )
    return True


def _check_resource(resource_type: str, resource_id: str) -> None:
    if resource_type not in RESOURCE_TYPES:
        raise ConfigError("type", f"unknown resource type {resource_type!r}")
    if not resource_id or len(resource_id) > 255:
        raise ConfigError("id", "must be 1-255 characters")


def put_resource(
    session: Session,
    ctx: WriteContext,
    workspace_id: str,
    *,
    resource_type: str,
    resource_id: str,
    labels: Mapping[str, str],
) -> bool:
    """Register a resource or replace its labels; returns whether anything changed."""
    get_workspace(session, ctx.org_id, workspace_id, "workspace_id")
    _check_resource(resource_type, resource_id)
    for key, value in labels.items():
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise ConfigError(f"labels.{key}", "labels map non-empty strings to strings")
    row = session.get(RegisteredResourceRow, (ctx.org_id, workspace_id, resource_type, resource_id))
    if row is not None and row.labels == dict(labels):
        return False
    if row is None:
        session.add(
            RegisteredResourceRow(
                org_id=ctx.org_id,
                workspace_id=workspace_id,
                type=resource_type,
                resource_id=resource_id,
                labels=dict(labels),
                updated_at=utcnow(),
            )
        )
    else:
        row.labels, row.updated_at = dict(labels), utcnow()
    session.flush()
    groups = workspace_impact(session, ctx.org_id, [workspace_id])
    _record(
        session,
        ctx,
        "config.resource.updated",
        "resource",
        None,
        groups,
        f"{workspace_id}/{resource_type}/{resource_id}",
    )
    return True


def delete_resource(
    session: Session, ctx: WriteContext, workspace_id: str, resource_type: str, resource_id: str
) -> None:
    row = session.get(RegisteredResourceRow, (ctx.org_id, workspace_id, resource_type, resource_id))
    if row is None:
        raise NotFoundError(
            "id", f"no registered {resource_type} {resource_id!r} in {workspace_id!r}"
        )
    session.delete(row)
    session.flush()
    groups = workspace_impact(session, ctx.org_id, [workspace_id])
    _record(
        session,
        ctx,
        "config.resource.deleted",
        "resource",
        None,
        groups,
        f"{workspace_id}/{resource_type}/{resource_id}",
    )


# --- mapping rules --------------------------------------------------------------------------


POSITION_MIN: Final = -(2**31)
POSITION_MAX: Final = 2**31 - 1


@dataclass(frozen=True)
class RuleSpec:
    id: str
    attribute: str
    match: str
    pattern: str
    kind: str = "workspace_role"
    workspace: str | None = None
    role: str | None = None
    space: str | None = None
    ignore_case: bool = False
    description: str = ""
    enabled: bool = True
    position: int = 0


def validate_rule(spec: RuleSpec) -> None:
    """``models.access`` validation (RE2, captures, targets); ConfigError naming the field."""
    check_id(spec.id, "id")
    if spec.id == MANUAL:
        raise ConfigError("id", f"{MANUAL!r} is reserved for manual bindings")
    for name in ("workspace", "role", "space"):
        value = getattr(spec, name)
        if value is not None and not (0 < len(value) <= 200):
            raise ConfigError(name, "must be 1-200 characters")
    if not POSITION_MIN <= spec.position <= POSITION_MAX:  # an INTEGER column
        raise ConfigError("position", f"must be between {POSITION_MIN} and {POSITION_MAX}")
    # rule_from_row maps unknown enum values to defaults: check them first.
    if spec.attribute not in ("externalId", "displayName"):
        raise ConfigError("attribute", "must be 'externalId' or 'displayName'")
    if spec.match not in ("exact", "prefix", "regex"):
        raise ConfigError("match", "must be 'exact', 'prefix' or 'regex'")
    if spec.kind not in ("workspace_role", "space", "org_admin"):
        raise ConfigError("kind", "must be 'workspace_role', 'space' or 'org_admin'")
    try:
        validate_mapping_rule(rule_from_row(_rule_row(spec, "")))
    except ValidationError as exc:
        raise ConfigError(exc.field, exc.message) from exc


def _rule_row(spec: RuleSpec, org_id: str) -> MappingRuleRow:
    return MappingRuleRow(
        org_id=org_id,
        id=spec.id,
        description=spec.description,
        attribute=spec.attribute,
        match=spec.match,
        pattern=spec.pattern,
        ignore_case=spec.ignore_case,
        kind=spec.kind,
        workspace=spec.workspace,
        role=spec.role,
        space=spec.space,
        enabled=spec.enabled,
        position=spec.position,
    )


RULE_FIELDS: Final = (
    "description",
    "attribute",
    "match",
    "pattern",
    "ignore_case",
    "kind",
    "workspace",
    "role",
    "space",
    "enabled",
    "position",
)


def create_rule(
    session: Session, ctx: WriteContext, spec: RuleSpec
) -> tuple[MappingRuleRow, RuleApplication]:
    validate_rule(spec)
    if session.get(MappingRuleRow, (ctx.org_id, spec.id)) is not None:
        raise ConflictError("id", f"mapping rule {spec.id!r} already exists")
    row = _rule_row(spec, ctx.org_id)
    row.created_at = row.updated_at = utcnow()
    session.add(row)
    session.flush()
    rules = _reapply_rule(session, ctx, spec.id)
    _record(
        session,
        ctx,
        "config.rule.created",
        "mapping_rule",
        spec.id,
        rules.affected_group_ids,
        f"{spec.attribute} {spec.match} {spec.pattern!r}",
    )
    return row, rules


def update_rule(
    session: Session, ctx: WriteContext, spec: RuleSpec
) -> tuple[MappingRuleRow, RuleApplication]:
    row = session.get(MappingRuleRow, (ctx.org_id, spec.id))
    if row is None:
        raise NotFoundError("id", f"no mapping rule {spec.id!r} in this organization")
    validate_rule(spec)
    changed = {f for f in RULE_FIELDS if getattr(row, f) != getattr(spec, f)}
    if not changed:
        return row, RuleApplication()
    for f in changed:
        setattr(row, f, getattr(spec, f))
    row.updated_at = utcnow()
    session.flush()
    # What a rule makes does not depend on its description or position.
    rules = (
        _reapply_rule(session, ctx, spec.id)
        if changed - {"description", "position"}
        else RuleApplication()
    )
    _record(
        session,
        ctx,
        "config.rule.updated",
        "mapping_rule",
        spec.id,
        rules.affected_group_ids,
        ", ".join(sorted(changed)),
    )
    return row, rules


def delete_rule(session: Session, ctx: WriteContext, rule_id: str) -> RuleApplication:
    """Delete a rule and the bindings it made."""
    if session.get(MappingRuleRow, (ctx.org_id, rule_id)) is None:
        raise NotFoundError("id", f"no mapping rule {rule_id!r} in this organization")
    session.execute(
        delete(MappingRuleRow).where(
            MappingRuleRow.org_id == ctx.org_id, MappingRuleRow.id == rule_id
        )
    )
    session.expire_all()
    rules = _reapply_rule(session, ctx, rule_id)
    _record(session, ctx, "config.rule.deleted", "mapping_rule", rule_id, rules.affected_group_ids)
    return rules


__all__ = [
    "ID_RE",
    "RuleApplication",
    "RuleSpec",
    "WorkspaceSpec",
    "WriteContext",
    "apply_mapping_rules",
    "change_role_binding",
    "create_org_admin_binding",
    "create_role",
    "create_role_binding",
    "create_rule",
    "create_space",
    "create_space_assignment",
    "create_workspace",
    "delete_binding",
    "delete_resource",
    "delete_role",
    "delete_rule",
    "delete_space",
    "delete_workspace",
    "put_resource",
    "set_subset_categories",
    "update_role",
    "update_rule",
    "update_space",
    "update_workspace",
]
