"""Layer: store. Custom role writes: the role definition validated, then create, update,
delete (a role still bound manually cannot be deleted)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from models.access.catalogue import BUILTIN_ROLES
from models.access.errors import ValidationError
from models.access.inputs import MANUAL
from models.access.roles import Role
from models.db.base import utcnow
from models.db.config_errors import ConfigError, ConflictError, NotFoundError
from models.db.config_impact import groups_with_role
from models.db.config_store.context import (
    WriteContext,
    check_id,
    check_unique,
    reapply_targets,
    record,
    unknown_categories,
)
from models.db.config_tables import CustomRole, RoleBindingRow
from models.db.custom_roles import build_custom_role


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
        bad = unknown_categories(session, org_id, ws_id, role)
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
    rules = reapply_targets(session, ctx, "role", role_id, name)
    record(session, ctx, "config.role.created", "role", role_id, rules.affected_group_ids, name)
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
    rules = reapply_targets(session, ctx, "role", role_id, old_name, name)
    record(
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
    rules = reapply_targets(session, ctx, "role", role_id, role_name)
    record(session, ctx, "config.role.deleted", "role", role_id, groups | rules.affected_group_ids)
