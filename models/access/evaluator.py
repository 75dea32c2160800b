"""Layer: pure. The reference evaluator: (group set, org config) -> per-workspace effective access.

It keeps full provenance (which group, role and binding produced each grant)
for ``explain``. The compiled cache form (``compiled.py``) is computed by a
separate fast path; property tests hold the two to identical decisions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Final, Literal

from .catalogue import (
    ADMIN,
    L_ADMIN,
    LegacyPermissions,
    RawGrant,
    legacy_permissions,
    legacy_rank,
    normalize_grants,
    v2_raw_grants,
)
from .grants import APPROVAL_SPLIT, SPLIT_HALVES, PermissionsModel
from .inputs import OrgConfig, RoleBinding, User, Workspace
from .roles import LegacyRole, V2Role
from .subsets import SubsetLimit

ALL: Final = "all"
VisibleSpaces = frozenset[str] | Literal["all"]

# (role id, binding source) — where a grant or role came from.
Provenance = tuple[str, str]


@dataclass(frozen=True, slots=True)
class EffectiveGrant:
    """A v2 grant one group holds, with the roles/bindings that produced it."""

    scope: str
    resource_id: str
    name: str
    limit: SubsetLimit | None
    provenance: tuple[Provenance, ...]


@dataclass(frozen=True, slots=True)
class GroupAccess:
    """What one group brings to one workspace."""

    group_id: str
    bindings: tuple[RoleBinding, ...]
    """Valid role bindings; org admin appears as a binding to the admin role whose
    ``source`` is ``org_admin:<binding source>``."""
    grants: tuple[EffectiveGrant, ...]
    spaces: frozenset[str]
    is_admin: bool

    @property
    def role_ids(self) -> tuple[str, ...]:
        return tuple(sorted({b.role_id for b in self.bindings}))


@dataclass(frozen=True, slots=True)
class IgnoredBinding:
    binding: RoleBinding
    rule: str
    reason: str


@dataclass(frozen=True, slots=True)
class WorkspaceAccess:
    """Effective permissions of a group set (hence of a user) in one workspace."""

    workspace_id: str
    root_id: str | None
    model: PermissionsModel
    spaces_enabled: bool
    approvals_required: bool
    groups: tuple[GroupAccess, ...]
    is_admin: bool
    visible: frozenset[str] | None
    """Visible Space ids; None means every Space (admin, or Spaces disabled)."""
    legacy_role: str | None = None
    legacy_shadowed: tuple[str, ...] = ()
    legacy: LegacyPermissions | None = None
    ignored: tuple[IgnoredBinding, ...] = ()
    rules: tuple[str, ...] = ()

    @property
    def has_role(self) -> bool:
        return bool(self.groups)

    @property
    def role_ids(self) -> tuple[str, ...]:
        return tuple(sorted({r for g in self.groups for r in g.role_ids}))

    @property
    def visible_spaces(self) -> VisibleSpaces:
        if not self.groups:
            return frozenset()
        return ALL if self.visible is None else self.visible

    def grants(self) -> frozenset[RawGrant]:
        """Union of the v2 grants of every group (without provenance)."""
        return frozenset(
            (e.scope, e.resource_id, e.name, e.limit) for g in self.groups for e in g.grants
        )


def _no_access(ws_id: str, ws: Workspace | None) -> WorkspaceAccess:
    return WorkspaceAccess(
        workspace_id=ws_id,
        root_id=None,
        model=ws.permissions_model if ws else "v2",
        spaces_enabled=ws.spaces_enabled if ws else False,
        approvals_required=ws.approvals_required if ws else False,
        groups=(),
        is_admin=False,
        visible=frozenset(),
        rules=("groups.no_role_sees_nothing",),
    )


def _v2_group_grants(
    bindings: Iterable[tuple[RoleBinding, V2Role]], approvals: bool
) -> tuple[EffectiveGrant, ...]:
    raw: dict[RawGrant, set[Provenance]] = {}
    for binding, role in bindings:
        for g in v2_raw_grants(role):
            raw.setdefault(g, set()).add((role.id, binding.source))
    normalized = normalize_grants(raw, approvals)
    out: list[EffectiveGrant] = []
    for scope, rid, name, limit in normalized:
        prov = raw.get((scope, rid, name, limit))
        if prov is None:  # produced by the approval split / merge: collect both halves
            prov = set()
            halves = APPROVAL_SPLIT.get((scope, name))
            whole = SPLIT_HALVES.get((scope, name))
            related = set(halves) if halves else ({whole[1]} if whole else set())
            for (s2, _r2, n2, _l2), p in raw.items():
                if s2 == scope and n2 in related:
                    prov |= p
        out.append(EffectiveGrant(scope, rid, name, limit, tuple(sorted(prov))))
    out.sort(key=lambda e: (e.scope, e.resource_id, e.name, e.limit is not None, repr(e.limit)))
    return tuple(out)


def evaluate_workspace(
    groups: frozenset[str], config: OrgConfig, workspace_id: str
) -> WorkspaceAccess:
    """Effective access of ``groups`` in ``workspace_id`` (an environment: its root's)."""
    ws = config.workspace_by_id.get(workspace_id)
    root_id = config.roots.get(workspace_id)
    if ws is None or root_id is None:
        return _no_access(workspace_id, ws)
    root = config.workspace_by_id[root_id]
    access = _evaluate_root(groups, config, root)
    if root_id != workspace_id:
        rules = (*access.rules, "environments.inherit_parent")
        access = replace(access, workspace_id=workspace_id, rules=tuple(sorted(set(rules))))
    return access


def _evaluate_root(groups: frozenset[str], config: OrgConfig, root: Workspace) -> WorkspaceAccess:
    index = config.group_index
    rules: set[str] = set()
    ignored: list[IgnoredBinding] = []
    model = root.permissions_model
    admin_role = ADMIN if model == "v2" else L_ADMIN
    per_group: list[tuple[str, list[tuple[RoleBinding, V2Role | LegacyRole]], bool]] = []
    for gid in sorted(groups):
        valid: list[tuple[RoleBinding, V2Role | LegacyRole]] = []
        admin_sources = index.org_admin_sources.get(gid, ())
        for src in admin_sources:
            rules.add("org_admin.workspace_admin_everywhere")
            rb = RoleBinding(gid, root.id, admin_role, f"org_admin:{src}")
            valid.append((rb, config.role_by_id[admin_role]))
        for rb in index.role_bindings.get(gid, ()):
            if rb.workspace_id == root.id:
                role = config.role_by_id.get(rb.role_id)
                if role is None or role.model != model:
                    rules.add("bindings.role_model_mismatch_ignored")
                    why = "unknown role" if role is None else f"{role.model} role in {model} ws"
                    ignored.append(IgnoredBinding(rb, "bindings.role_model_mismatch_ignored", why))
                    continue
                valid.append((rb, role))
            elif config.roots.get(rb.workspace_id) == root.id:
                rules.add("environments.inherit_parent")
                ignored.append(
                    IgnoredBinding(rb, "environments.inherit_parent", "binding on an environment")
                )
        if valid:
            per_group.append((gid, valid, bool(admin_sources)))
        elif index.space_assignments.get(gid) and any(
            sa.workspace_id == root.id and (root.id, sa.space_id) in config.space_by_key
            for sa in index.space_assignments[gid]
        ):
            rules.add("spaces.assignment_alone_grants_nothing")

    if not per_group:
        rules.add("groups.no_role_sees_nothing")
        return replace(
            _no_access(root.id, root),
            root_id=root.id,
            ignored=tuple(ignored),
            rules=tuple(sorted(rules)),
        )

    group_access: list[GroupAccess] = []
    is_admin = False
    for gid, valid, _org_admin in per_group:
        spaces = frozenset(
            sa.space_id
            for sa in index.space_assignments.get(gid, ())
            if sa.workspace_id == root.id and (root.id, sa.space_id) in config.space_by_key
        )
        group_admin = any(role.id == admin_role for _, role in valid)
        grants: tuple[EffectiveGrant, ...] = ()
        if model == "v2":
            v2 = [(b, r) for b, r in valid if isinstance(r, V2Role)]
            grants = _v2_group_grants(v2, root.approvals_required)
            names = {(sc, n) for _, r in v2 for sc, _rid, n, _l in v2_raw_grants(r)}
            if root.approvals_required and names & APPROVAL_SPLIT.keys():
                rules.add("approvals.split")
            if not root.approvals_required and names & SPLIT_HALVES.keys():
                rules.add("approvals.off_merge_per_group")
        is_admin = is_admin or group_admin
        bindings = tuple(sorted({b for b, _ in valid}, key=lambda b: (b.role_id, b.source)))
        group_access.append(GroupAccess(gid, bindings, grants, spaces, group_admin))
    if len(group_access) > 1:
        rules.add("groups.union")

    legacy_role, shadowed, legacy, legacy_admin = _choose_legacy(per_group, model, rules)
    is_admin = is_admin if model == "v2" else legacy_admin
    visible = _visible(root, is_admin, group_access, rules)

    return WorkspaceAccess(
        workspace_id=root.id,
        root_id=root.id,
        model=model,
        spaces_enabled=root.spaces_enabled,
        approvals_required=root.approvals_required,
        groups=tuple(group_access),
        is_admin=is_admin,
        visible=visible,
        legacy_role=legacy_role,
        legacy_shadowed=shadowed,
        legacy=legacy,
        ignored=tuple(ignored),
        rules=tuple(sorted(rules)),
    )


def _choose_legacy(
    per_group: list[tuple[str, list[tuple[RoleBinding, V2Role | LegacyRole]], bool]],
    model: str,
    rules: set[str],
) -> tuple[str | None, tuple[str, ...], LegacyPermissions | None, bool]:
    """Decision legacy.one_role_per_user: the highest role wins, the others are shadowed."""
    if model != "legacy":
        return None, (), None, False
    candidates = {
        role.id: role
        for _, valid, _ in per_group
        for _, role in valid
        if isinstance(role, LegacyRole)
    }
    ranked = sorted(candidates.values(), key=legacy_rank)
    shadowed = tuple(r.id for r in ranked[1:])
    if shadowed:
        rules.add("legacy.one_role_per_user")
        if any(not r.builtin for r in ranked):
            rules.add("legacy.custom_role_precedence")
    is_admin = ranked[0].id == L_ADMIN
    if is_admin:
        rules.add("legacy.admin_is_workspace_admin")
    return ranked[0].id, shadowed, legacy_permissions(ranked[0]), is_admin


def _visible(
    root: Workspace, is_admin: bool, groups: list[GroupAccess], rules: set[str]
) -> frozenset[str] | None:
    if not root.spaces_enabled:
        rules.add("spaces.disabled_no_filter")
        return None
    if is_admin:
        rules.add("spaces.admins_see_all")
        return None
    rules.add("spaces.visibility_per_user")
    return frozenset().union(*(g.spaces for g in groups))


def evaluate_groups(groups: frozenset[str], config: OrgConfig) -> dict[str, WorkspaceAccess]:
    """Effective access of a group set in every workspace of the org (environments included)."""
    out: dict[str, WorkspaceAccess] = {}
    root_cache: dict[str, WorkspaceAccess] = {}
    for ws in config.workspaces:
        root_id = config.roots.get(ws.id)
        if root_id is None:
            out[ws.id] = _no_access(ws.id, ws)
            continue
        access = root_cache.get(root_id)
        if access is None:
            access = evaluate_workspace(groups, config, root_id)
            root_cache[root_id] = access
        if root_id != ws.id:
            rules = tuple(sorted({*access.rules, "environments.inherit_parent"}))
            out[ws.id] = replace(access, workspace_id=ws.id, rules=rules)
        else:
            out[ws.id] = access
    return out


def evaluate_user(user: User | None, config: OrgConfig) -> dict[str, WorkspaceAccess]:
    """Effective access of a user: nothing at all unless active and not deleted."""
    if user is None or not user.can_act:
        return {}
    return evaluate_groups(user.group_ids, config)
