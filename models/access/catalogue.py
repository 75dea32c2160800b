"""Layer: pure. The role catalogue as data: v2 pre-built roles, the legacy matrix, precedence.

* ``V2_PREBUILT_TABLE`` is contract §2.2 row by row. Rows use the approval-split
  names (draft / approve); :func:`normalize_grants` turns them back into the single
  ``configure_*`` grant in workspaces without approval flows.
* ``LEGACY_MATRIX`` is contract §3 row by row; :func:`legacy_permissions` expands a
  level (Full / Read / Limited / Full*) into actions.
* ``LEGACY_PRECEDENCE`` is the "one role per user" order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from .errors import ValidationError
from .grants import (
    APPROVAL_SPLIT,
    DESTINATION,
    LEGACY_APPLICABLE,
    LEGACY_RESOURCE_TYPES,
    PARENT_MODEL,
    SOURCE,
    SPLIT_HALVES,
    V2_GRANT_CODES,
    WORKSPACE,
)
from .roles import (
    WILDCARD,
    LegacyLevel,
    LegacyRole,
    ResourceGrant,
    Role,
    V2Role,
    validate_role,
)
from .subsets import SubsetLimit

# --- v2 pre-built roles -----------------------------------------------------

ADMIN: Final = "admin"
EDITOR: Final = "editor"
DRAFT_EDITOR: Final = "draft_editor"
VIEWER: Final = "viewer"
V2_PREBUILT_IDS: Final[tuple[str, ...]] = (ADMIN, EDITOR, DRAFT_EDITOR, VIEWER)

_EVENT_CREATION: Final = (
    "create_event_sources",
    "create_event_warehouse_destinations",
    "create_event_streaming_destinations",
    "create_event_contracts",
    "create_event_functions",
)

# (row label, scope, grants, (admin, editor, draft_editor, viewer)) — contract §2.2.
V2_PREBUILT_TABLE: Final[tuple[tuple[str, str, tuple[str, ...], tuple[bool, ...]], ...]] = (
    ("create_sources / create_destinations", WORKSPACE,
     ("create_sources", "create_destinations"), (True, True, False, False)),
    ("source: view_data", SOURCE, ("view_data",), (True, True, True, False)),
    ("source: draft models & syncs", SOURCE, ("draft_models_syncs",), (True, True, True, False)),
    ("source: approve models & syncs", SOURCE, ("approve_models_syncs",),
     (True, True, False, False)),
    ("source: configure_schema", SOURCE, ("configure_schema",), (True, False, False, False)),
    ("source: manage_source", SOURCE, ("manage_source",), (True, False, False, False)),
    ("destination: trigger_syncs", DESTINATION, ("trigger_syncs",), (True, True, False, False)),
    ("destination: draft syncs", DESTINATION, ("draft_syncs",), (True, True, True, False)),
    ("destination: approve syncs", DESTINATION, ("approve_syncs",), (True, True, False, False)),
    ("destination: manage_destination", DESTINATION, ("manage_destination",),
     (True, False, False, False)),
    ("parent model: view_parent_model_data", PARENT_MODEL, ("view_parent_model_data",),
     (True, True, True, False)),
    ("parent model: configure_audiences_syncs", PARENT_MODEL, ("configure_audiences_syncs",),
     (True, True, True, False)),
    ("parent model: trigger_audience_syncs", PARENT_MODEL, ("trigger_audience_syncs",),
     (True, True, False, False)),
    ("parent model: approve_audience_syncs", PARENT_MODEL, ("approve_audience_syncs",),
     (True, False, False, False)),
    ("access_agents", WORKSPACE, ("access_agents",), (True, True, False, False)),
    ("configure_agents", WORKSPACE, ("configure_agents",), (True, False, False, False)),
    ("all five event-creation grants", WORKSPACE, _EVENT_CREATION, (True, True, False, False)),
)  # fmt: skip

_V2_NAMES: Final = {ADMIN: "Workspace admin", EDITOR: "Workspace editor",
                    DRAFT_EDITOR: "Draft editor", VIEWER: "Viewer"}  # fmt: skip


def _prebuilt_v2(role_id: str, column: int) -> V2Role:
    ws: set[str] = set()
    by_scope: dict[str, set[str]] = {}
    if role_id == ADMIN:
        # Decision v2.admin_holds_every_grant: the admin role holds every grant of
        # the vocabulary on every resource (incl. manage_workspace, journeys, Events).
        for scope, grant in V2_GRANT_CODES:
            if (scope, grant) in APPROVAL_SPLIT:
                continue  # expressed as its two halves, like every pre-built row
            (ws.add(grant) if scope == WORKSPACE else by_scope.setdefault(scope, set()).add(grant))
    else:
        for _, scope, grants, marks in V2_PREBUILT_TABLE:
            if marks[column]:
                target = ws if scope == WORKSPACE else by_scope.setdefault(scope, set())
                target.update(grants)
    return V2Role(
        id=role_id,
        name=_V2_NAMES[role_id],
        workspace_grants=frozenset(ws),
        resource_grants=tuple(
            ResourceGrant(scope, WILDCARD, frozenset(g)) for scope, g in sorted(by_scope.items())
        ),
        builtin=True,
    )


V2_PREBUILT: Final[dict[str, V2Role]] = {
    rid: _prebuilt_v2(rid, col) for col, rid in enumerate(V2_PREBUILT_IDS)
}

# --- legacy roles -----------------------------------------------------------

L_ADMIN: Final = "legacy_admin"
L_WORKSPACE_EDITOR: Final = "legacy_workspace_editor"
L_MODEL_SYNC_EDITOR: Final = "legacy_model_sync_editor"
L_SYNC_EDITOR: Final = "legacy_sync_editor"
L_AUDIENCE_EDITOR: Final = "legacy_audience_editor"
L_SOURCE_ADMIN: Final = "legacy_source_admin"
L_DESTINATION_ADMIN: Final = "legacy_destination_admin"
L_WORKSPACE_VIEWER: Final = "legacy_workspace_viewer"
L_DRAFT_CONTRIBUTOR: Final = "legacy_draft_contributor"

F: Final = "full"
R: Final = "read"
LTD: Final = "limited"
FS: Final = "full_star"
NONE: Final = None

# (id, name, levels for source, model, destination, sync, audience, account) — contract §3.
LEGACY_MATRIX: Final[tuple[tuple[str, str, tuple[LegacyLevel | None, ...]], ...]] = (
    (L_ADMIN, "Admin", (F, F, F, F, F, F)),
    (L_WORKSPACE_EDITOR, "Workspace editor", (F, F, F, F, F, NONE)),
    (L_MODEL_SYNC_EDITOR, "Model + sync editor", (R, F, R, F, F, NONE)),
    (L_SYNC_EDITOR, "Sync editor", (R, R, R, F, F, NONE)),
    (L_AUDIENCE_EDITOR, "Audience editor", (R, R, R, LTD, F, NONE)),
    (L_SOURCE_ADMIN, "Source admin", (F, F, R, R, R, NONE)),
    (L_DESTINATION_ADMIN, "Destination admin", (R, R, F, R, R, F)),
    (L_WORKSPACE_VIEWER, "Workspace viewer", (R, R, R, R, R, NONE)),
    (L_DRAFT_CONTRIBUTOR, "Workspace draft contributor", (F, FS, F, FS, F, NONE)),
)

# Decision legacy.one_role_per_user: highest first.
LEGACY_PRECEDENCE: Final[tuple[str, ...]] = (
    L_ADMIN,
    L_WORKSPACE_EDITOR,
    L_DRAFT_CONTRIBUTOR,
    L_MODEL_SYNC_EDITOR,
    L_SOURCE_ADMIN,
    L_DESTINATION_ADMIN,
    L_SYNC_EDITOR,
    L_AUDIENCE_EDITOR,
    L_WORKSPACE_VIEWER,
)
# `approve` on models and syncs: every built-in role except these two.
LEGACY_NO_APPROVE: Final[frozenset[str]] = frozenset({L_DRAFT_CONTRIBUTOR, L_WORKSPACE_VIEWER})

LEGACY_BUILTIN: Final[dict[str, LegacyRole]] = {
    rid: LegacyRole(
        id=rid,
        name=name,
        levels=tuple(
            (rtype, level)
            for rtype, level in zip(LEGACY_RESOURCE_TYPES, levels, strict=True)
            if level is not None
        ),
        builtin=True,
    )
    for rid, name, levels in LEGACY_MATRIX
}

BUILTIN_ROLES: Final[dict[str, Role]] = {**V2_PREBUILT, **LEGACY_BUILTIN}


def legacy_rank(role: LegacyRole) -> tuple[int, str]:
    """Sort key for decision legacy.one_role_per_user (lower wins).

    Decision legacy.custom_role_precedence: custom legacy roles rank below every
    built-in role except Workspace viewer; among themselves by role id.
    """
    if role.builtin:
        idx = LEGACY_PRECEDENCE.index(role.id)
        if role.id == L_WORKSPACE_VIEWER:
            return (idx + 1, role.id)
        return (idx, role.id)
    return (LEGACY_PRECEDENCE.index(L_WORKSPACE_VIEWER), role.id)


# --- expansion --------------------------------------------------------------

# (scope, resource id or "*" ("" for workspace scope), grant name, subset limit)
RawGrant = tuple[str, str, str, SubsetLimit | None]


def v2_raw_grants(role: V2Role) -> tuple[RawGrant, ...]:
    """Every grant a v2 role states, before approval-flow normalization."""
    out: list[RawGrant] = [(WORKSPACE, "", g, None) for g in sorted(role.workspace_grants)]
    for rg in role.resource_grants:
        for g in sorted(rg.grants):
            limit = rg.subset_limit if g in _LIMITABLE else None
            out.append((rg.scope, rg.resource_id, g, limit))
    return tuple(out)


_LIMITABLE: Final = frozenset({"view_parent_model_data", "configure_audiences_syncs"})


def normalize_grants(grants: Iterable[RawGrant], approvals: bool) -> frozenset[RawGrant]:
    """Apply the approval-flow split to the grants held by ONE group.

    * approvals on (rule ``approvals.split``): ``configure_X`` becomes
      ``draft_X`` + ``approve_X`` on the same resource;
    * approvals off (rule ``approvals.off_merge_per_group``): ``draft_X`` and
      ``approve_X`` held by the same group on the same resource (or one of them on
      ``*``) become ``configure_X`` on that resource; a lone half grants nothing.
    """
    out: set[RawGrant] = set()
    halves: dict[tuple[str, str], dict[str, set[str]]] = {}
    for scope, rid, name, limit in grants:
        if approvals:
            split = APPROVAL_SPLIT.get((scope, name))
            if split is None:
                out.add((scope, rid, name, limit))
            else:
                out.add((scope, rid, split[0], None))
                out.add((scope, rid, split[1], None))
        else:
            whole = SPLIT_HALVES.get((scope, name))
            if whole is None:
                out.add((scope, rid, name, limit))
            else:
                halves.setdefault(whole, {}).setdefault(name, set()).add(rid)
    for (scope, configure), by_half in halves.items():
        draft_name, approve_name = APPROVAL_SPLIT[(scope, configure)]
        drafts = by_half.get(draft_name, set())
        approves = by_half.get(approve_name, set())
        for d in drafts:
            for a in approves:
                if a in (d, WILDCARD):
                    out.add((scope, d, configure, None))
                elif d == WILDCARD:
                    out.add((scope, a, configure, None))
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class LegacyPermissions:
    """Expanded legacy permissions: unconditional (type, action) pairs plus
    label-conditioned ones as (type, actions, conditions)."""

    actions: frozenset[tuple[str, str]]
    conditional: tuple[tuple[str, frozenset[str], tuple[tuple[str, frozenset[str]], ...]], ...]


def _level_actions(rtype: str, level: str) -> set[str]:
    applicable = LEGACY_APPLICABLE[rtype]
    if level == "full":
        return set(applicable)
    if level == "full_star":
        # Decision legacy.full_star_is_draft: edits are drafts — no approve, no publish.
        return set(applicable - {"approve", "publish"})
    if level == "limited":
        # Decision legacy.limited_excludes_enable_start.
        return set(applicable - {"enable", "start"})
    return {"read"} | ({"preview", "debugger"} & applicable)


def _statement_actions(rtype: str, actions: Iterable[str]) -> set[str]:
    applicable = LEGACY_APPLICABLE[rtype]
    out: set[str] = set()
    for a in actions:
        out |= set(applicable) if a == WILDCARD else ({a} & applicable)
    if "read" in out:  # rule legacy.read_implies_preview_debugger
        out |= {"preview", "debugger"} & applicable
    if "update" in out and "publish" in applicable:  # custom edits are not drafts
        out.add("publish")
    return out


def legacy_permissions(role: LegacyRole) -> LegacyPermissions:
    """Expand a legacy role (matrix row or policy) into (type, action) permissions."""
    actions: set[tuple[str, str]] = set()
    conditional: list[tuple[str, frozenset[str], tuple[tuple[str, frozenset[str]], ...]]] = []
    for rtype, level in role.levels:
        actions.update((rtype, a) for a in _level_actions(rtype, level))
    if role.builtin and role.id not in LEGACY_NO_APPROVE:
        actions.update((("model", "approve"), ("sync", "approve")))
    for st in role.statements:
        types = LEGACY_RESOURCE_TYPES if st.resource == WILDCARD else (st.resource,)
        for rtype in types:
            acts = _statement_actions(rtype, st.actions)
            if not acts:
                continue
            if st.conditions:
                conditional.append((rtype, frozenset(acts), st.conditions))
            else:
                actions.update((rtype, a) for a in acts)
    conditional.sort(key=lambda c: (c[0], sorted(c[1]), [(k, sorted(v)) for k, v in c[2]]))
    return LegacyPermissions(frozenset(actions), tuple(conditional))


def labels_match(
    conditions: tuple[tuple[str, frozenset[str]], ...],
    labels: frozenset[tuple[str, str]] | None,
) -> bool:
    """Every condition key has a label whose value is allowed (rule legacy.label_conditions)."""
    if labels is None:
        return False
    return all(any(k == key and v in allowed for k, v in labels) for key, allowed in conditions)


def validate_custom_role(role: Role) -> None:
    """Validation used by the admin API before storing a custom role."""
    if role.id in BUILTIN_ROLES:
        raise ValidationError("id", f"{role.id!r} is reserved for a built-in role")
    if role.builtin:
        raise ValidationError("builtin", "custom roles cannot be built-in")
    validate_role(role)


def builtin_role(role_id: str) -> Role | None:
    """Look up a built-in role by id."""
    return BUILTIN_ROLES.get(role_id)


def all_roles(custom: Mapping[str, Role]) -> dict[str, Role]:
    """Built-in roles plus custom ones (custom ids never shadow built-ins)."""
    return {**custom, **BUILTIN_ROLES}
