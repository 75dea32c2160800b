"""Layer: store. SQL -> ``models.access`` inputs, for the worker and the admin API's reads.

Every function is a small, fixed number of set-based queries (no per-row queries);
id lists are sent in chunks so a 50k-member fan-out stays within driver limits.

- ``load_org_config(session, org_id)``: the organization's ``OrgConfig`` (eight
  queries: one per configuration table).
- ``load_user_inputs(session, org_id, user_ids)``: ``{user_id: models.access.User}``
  for the ids that exist in the organization (unknown or deleted ids are absent;
  the evaluator denies them).
- ``users_in_groups(session, org_id, group_ids)``: ids of the direct members.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.access.errors import ValidationError
from models.access.inputs import (
    OrgAdminBinding,
    OrgConfig,
    ParentModelSubsets,
    RegisteredResource,
    RoleBinding,
    Space,
    SpaceAssignment,
    User,
    Workspace,
)
from models.access.roles import Role
from models.access.subsets import SubsetCategory
from models.db.config_tables import (
    ConfigSpace,
    ConfigWorkspace,
    CustomRole,
    OrgAdminBindingRow,
    RegisteredResourceRow,
    RoleBindingRow,
    SpaceAssignmentRow,
    SubsetCategoryRow,
    binding_key,
)
from models.db.custom_roles import build_custom_role
from models.db.tables import GroupMember
from models.db.tables import User as UserRow

log = logging.getLogger("idsync.config")

CHUNK: Final = 1000


def chunks(ids: Iterable[str], size: int = CHUNK) -> Iterator[list[str]]:
    """Sorted unique ids in lists of at most ``size``."""
    uniq = sorted(set(ids))
    for start in range(0, len(uniq), size):
        yield uniq[start : start + size]


def load_custom_roles(session: Session, org_id: str) -> tuple[Role, ...]:
    """The organization's custom roles as ``models.access`` roles.

    A stored role that no longer validates (vocabulary changed since it was written)
    is left out and logged; bindings to it are then reported by the evaluator as
    bindings to an unknown role (rule ``bindings.role_model_mismatch_ignored``).
    """
    roles: list[Role] = []
    for row in session.scalars(
        select(CustomRole).where(CustomRole.org_id == org_id).order_by(CustomRole.id)
    ):
        try:
            roles.append(build_custom_role(row.id, row.name, row.model, row.definition))
        except ValidationError as exc:
            log.warning(
                "stored custom role no longer valid",
                extra={"org_id": org_id, "role_id": row.id, "error": str(exc)},
            )
    return tuple(roles)


def _keys(
    session: Session, table: type[RoleBindingRow] | type[SpaceAssignmentRow], org_id: str
) -> list[tuple[str, str, str, str]]:
    """The organization's role bindings or Space assignments, as their keys, in order."""
    key = binding_key(table)
    rows = session.execute(select(*key).where(table.org_id == org_id).order_by(*key))
    return [(group, workspace, target, source) for group, workspace, target, source in rows]


def load_org_config(session: Session, org_id: str) -> OrgConfig:
    """Everything the evaluator needs about one organization (memberships aside)."""
    workspaces = tuple(
        Workspace(
            id=w.id,
            permissions_model="legacy" if w.permissions_model == "legacy" else "v2",
            spaces_enabled=w.spaces_enabled,
            approvals_required=w.approvals_required,
            parent_workspace_id=w.parent_workspace_id,
            name=w.name or None,
        )
        for w in session.scalars(
            select(ConfigWorkspace)
            .where(ConfigWorkspace.org_id == org_id)
            .order_by(ConfigWorkspace.id)
        )
    )
    spaces = tuple(
        Space(id=s.id, workspace_id=s.workspace_id, name=s.name or None)
        for s in session.scalars(
            select(ConfigSpace)
            .where(ConfigSpace.org_id == org_id)
            .order_by(ConfigSpace.workspace_id, ConfigSpace.id)
        )
    )
    org_admins = tuple(
        OrgAdminBinding(group_id=g, source=src)
        for g, src in session.execute(
            select(OrgAdminBindingRow.group_id, OrgAdminBindingRow.source)
            .where(OrgAdminBindingRow.org_id == org_id)
            .order_by(OrgAdminBindingRow.group_id, OrgAdminBindingRow.source)
        )
    )
    role_bindings = tuple(
        RoleBinding(group_id=g, workspace_id=w, role_id=r, source=src)
        for g, w, r, src in _keys(session, RoleBindingRow, org_id)
    )
    space_assignments = tuple(
        SpaceAssignment(group_id=g, workspace_id=w, space_id=s, source=src)
        for g, w, s, src in _keys(session, SpaceAssignmentRow, org_id)
    )
    by_model: dict[tuple[str, str], list[SubsetCategory]] = {}
    for c in session.scalars(
        select(SubsetCategoryRow)
        .where(SubsetCategoryRow.org_id == org_id)
        .order_by(
            SubsetCategoryRow.workspace_id,
            SubsetCategoryRow.parent_model_id,
            SubsetCategoryRow.name,
        )
    ):
        by_model.setdefault((c.workspace_id, c.parent_model_id), []).append(
            SubsetCategory(c.name, c.required)
        )
    subsets = tuple(
        ParentModelSubsets(ws, pm, tuple(cats)) for (ws, pm), cats in sorted(by_model.items())
    )
    resources = tuple(
        RegisteredResource(
            workspace_id=r.workspace_id,
            type=r.type,
            id=r.resource_id,
            labels=frozenset((str(k), str(v)) for k, v in (r.labels or {}).items()),
        )
        for r in session.scalars(
            select(RegisteredResourceRow)
            .where(RegisteredResourceRow.org_id == org_id)
            .order_by(
                RegisteredResourceRow.workspace_id,
                RegisteredResourceRow.type,
                RegisteredResourceRow.resource_id,
            )
        )
    )
    return OrgConfig(
        workspaces=workspaces,
        spaces=spaces,
        roles=load_custom_roles(session, org_id),
        org_admins=org_admins,
        role_bindings=role_bindings,
        space_assignments=space_assignments,
        subset_categories=subsets,
        resources=resources,
    )


def load_user_inputs(session: Session, org_id: str, user_ids: Iterable[str]) -> dict[str, User]:
    """``{user_id: User(active, group_ids)}`` for the ids that exist in ``org_id``.

    Two queries per chunk of ids (users, then their memberships). Ids of another
    organization, unknown or deleted users are absent from the result.
    """
    out: dict[str, User] = {}
    for chunk in chunks(user_ids):
        active: dict[str, bool] = {
            uid: bool(flag)
            for uid, flag in session.execute(
                select(UserRow.id, UserRow.active).where(
                    UserRow.org_id == org_id, UserRow.id.in_(chunk)
                )
            )
        }
        if not active:
            continue
        groups: dict[str, set[str]] = {uid: set() for uid in active}
        for uid, gid in session.execute(
            select(GroupMember.user_id, GroupMember.group_id).where(
                GroupMember.org_id == org_id, GroupMember.user_id.in_(list(active))
            )
        ):
            groups[uid].add(gid)
        for uid, is_active in active.items():
            out[uid] = User(id=uid, active=bool(is_active), group_ids=frozenset(groups[uid]))
    return out


def users_in_groups(session: Session, org_id: str, group_ids: Iterable[str]) -> set[str]:
    """Ids of the users who are direct members of any of ``group_ids`` in ``org_id``."""
    out: set[str] = set()
    for chunk in chunks(group_ids):
        out.update(
            session.scalars(
                select(GroupMember.user_id)
                .where(GroupMember.org_id == org_id, GroupMember.group_id.in_(chunk))
                .distinct()
            )
        )
    return out


__all__ = [
    "chunks",
    "load_custom_roles",
    "load_org_config",
    "load_user_inputs",
    "users_in_groups",
]
