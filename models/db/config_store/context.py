"""Layer: store. What every access-configuration write shares: the write context (who
writes, for which organization), id checks, lookups that raise ``ConfigError`` /
``NotFoundError``, the change row each write records last, and the mapping-rule
re-application a write triggers (see ``models.db.config_store``)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.access.catalogue import BUILTIN_ROLES
from models.access.grants import LEGACY_RESOURCE_TYPES, RESOURCE_SCOPES
from models.access.roles import Role, V2Role
from models.access.subsets import UnknownLimitCategory, unknown_limit_categories
from models.db.config_errors import ConfigError, NotFoundError
from models.db.config_tables import ConfigSpace, ConfigWorkspace, CustomRole, SubsetCategoryRow
from models.db.database import record_change
from models.db.rule_application import (
    RuleApplication,
    TargetKind,
    apply_mapping_rules,
    reapply_for_targets,
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


def check_id(value: str, field: str) -> str:
    if not isinstance(value, str) or not ID_RE.match(value):
        raise ConfigError(
            field, "must be 1-36 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    return value


def record(
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


def reapply_targets(
    session: Session, ctx: WriteContext, target: TargetKind, *keys: str
) -> RuleApplication:
    """Re-apply what the rules make of a target that may have appeared, vanished or
    changed (``keys``: its id and names before and after the write)."""
    if ctx.defer_rules:
        return RuleApplication()
    return reapply_for_targets(
        session, ctx.org_id, target, set(keys), actor=ctx.actor, request_id=ctx.request_id
    )


def reapply_rule(session: Session, ctx: WriteContext, rule_id: str) -> RuleApplication:
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


def space_key(workspace_id: str, space_id: str) -> str:
    """How change rows and rule results name a Space: ``<workspace>/<space>``."""
    return f"{workspace_id}/{space_id}"


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


def unknown_categories(
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
