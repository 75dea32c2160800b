"""Layer: pure. Decisions on the reference evaluator's output (``WorkspaceAccess``).

Every function returns a :class:`Decision` carrying the rules that applied, the
grants that matched (with group / role / binding provenance) and, for a deny,
what is missing. ``explain`` renders these; ``check`` keeps only ``allowed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .catalogue import L_AUDIENCE_EDITOR, L_DRAFT_CONTRIBUTOR, V2_PREBUILT, labels_match
from .errors import UnknownGrantError
from .evaluator import GroupAccess, Provenance, WorkspaceAccess
from .grants import (
    APPROVAL_SPLIT,
    PARENT_MODEL,
    READ,
    REF_TYPE_TO_SCOPE,
    SPLIT_HALVES,
    WORKSPACE,
    question_models,
)
from .inputs import OrgConfig, ResourceRef
from .reasons import (
    GRANT_MISSING,
    GRANTED,
    LABELS_NOT_MATCHED,
    NO_ROLE_IN_WORKSPACE,
    NOT_SAME_GROUP,
    NOT_VALID_FOR_MODEL,
    SPACE_ID_REQUIRED,
    SPACE_NOT_VISIBLE,
    SUBSET_NOT_ALLOWED,
    USER_INACTIVE_OR_DELETED,
)
from .refs import SyncRef
from .roles import WILDCARD
from .subsets import limit_allows
from .sync_rules import (
    LEGACY_SYNC_ACTIONS,
    V2_SYNC_ACTIONS,
    legacy_sync_action,
    sync_source_scope,
    v2_sync_action,
    v2_sync_requirements,
)


@dataclass(frozen=True, slots=True)
class Match:
    """A grant that contributed to an allow: which group held it, from which roles/bindings."""

    group_id: str
    grant: str
    provenance: tuple[Provenance, ...]


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    rules: tuple[str, ...] = ()
    matched: tuple[Match, ...] = ()
    missing: tuple[str, ...] = ()
    reason: str = GRANTED
    """``granted``, or the code of the first thing missing (``models.access.reasons``)."""


class _Missing:
    """What a deny lacks, in the order checked; the first item's code is the reason."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.reasons: list[str] = []

    def add(self, reason: str, text: str) -> None:
        self.reasons.append(reason)
        self.items.append(text)

    def extend(self, decision: Decision) -> None:
        if not decision.allowed:
            self.reasons.append(decision.reason)
            self.items.extend(decision.missing)

    def __bool__(self) -> bool:
        return bool(self.items)

    def decision(self, rules: set[str], matched: list[Match]) -> Decision:
        if not self.items:
            return Decision(True, tuple(sorted(rules)), tuple(matched), (), GRANTED)
        return Decision(
            False, tuple(sorted(rules)), tuple(matched), tuple(self.items), self.reasons[0]
        )


def _deny(rules: Sequence[str], missing: Sequence[str], reason: str) -> Decision:
    return Decision(False, tuple(sorted(set(rules))), (), tuple(missing), reason)


def _ref_text(ref: ResourceRef | None) -> str:
    if ref is None:
        return "workspace"
    return f"{ref.type}:{ref.id if ref.id is not None else '?'}"


def _space_gate(
    access: WorkspaceAccess, space_id: str | None, needs_space: bool, rules: set[str]
) -> _Missing:
    """Missing items for the Space part of a check (empty: the Space is fine)."""
    missing = _Missing()
    if access.visible is None:
        if access.spaces_enabled and space_id is not None:
            rules.add("spaces.admins_see_all")
        return missing
    if space_id is None:
        if needs_space:
            rules.add("spaces.space_and_grant")
            missing.add(
                SPACE_ID_REQUIRED,
                "a space_id (Spaces are enabled and the resource lives in a Space)",
            )
        return missing
    rules.add("spaces.space_and_grant")
    if space_id not in access.visible:
        rules.add("spaces.visibility_per_user")
        missing.add(
            SPACE_NOT_VISIBLE,
            f"Space {space_id!r} of workspace {access.root_id!r} visible: no group of the "
            "user that holds a role there is assigned to it",
        )
    return missing


def _group_holds(
    group: GroupAccess,
    config: OrgConfig,
    access: WorkspaceAccess,
    grant: tuple[str, str],
    ref: ResourceRef | None,
) -> Match | None:
    scope, name = grant
    rid = ref.id if ref is not None else None
    subsets = ref.subsets if ref is not None else None
    cats: tuple[tuple[str, bool], ...] = ()
    if scope == PARENT_MODEL and rid is not None and access.root_id is not None:
        cats = config.categories_of(access.root_id, rid)
    for e in group.grants:
        if e.scope != scope or e.name != name:
            continue
        if scope != WORKSPACE and e.resource_id not in (WILDCARD, rid):
            continue
        if not limit_allows(cats, e.limit, subsets):
            continue
        on = "workspace" if scope == WORKSPACE else f"{scope}:{e.resource_id}"
        limited = " (subset-limited)" if e.limit is not None else ""
        return Match(group.group_id, f"{name} on {on}{limited}", e.provenance)
    return None


def _holds(
    access: WorkspaceAccess, config: OrgConfig, scope: str, name: str, ref: ResourceRef | None
) -> Match | None:
    for g in access.groups:
        m = _group_holds(g, config, access, (scope, name), ref)
        if m is not None:
            return m
    return None


def _why_not(access: WorkspaceAccess, scope: str, name: str, ref: ResourceRef | None) -> str:
    """Why no group holds ``name`` on ``ref``: only subset-limited grants cover the
    resource (``subset_not_allowed``), or none does (``grant_missing``)."""
    rid = ref.id if ref is not None else None
    for g in access.groups:
        for e in g.grants:
            if e.scope != scope or e.name != name or e.limit is None:
                continue
            if scope == WORKSPACE or e.resource_id in (WILDCARD, rid):
                return SUBSET_NOT_ALLOWED
    return GRANT_MISSING


def _missing_grant(name: str, ref: ResourceRef | None, reason: str) -> str:
    on = _ref_text(ref)
    if reason != SUBSET_NOT_ALLOWED:
        return f"{name} on {on}"
    used = ", ".join(f"{c}={v}" for c, v in sorted(ref.subsets or ())) if ref else ""
    what = f"the subset values used ({used})" if used else "audiences on it"
    return f"{name} on {on} covering {what}: the user's grants are subset-limited"


def _preamble(access: WorkspaceAccess | None, models: frozenset[str]) -> Decision | None:
    if access is None:
        return _deny(
            ["users.inactive_or_deleted_denied"],
            ["an active, known user"],
            USER_INACTIVE_OR_DELETED,
        )
    if not access.has_role:
        rules = [*access.rules, "groups.no_role_sees_nothing"]
        return _deny(
            rules,
            [f"a role binding in workspace {access.workspace_id!r}"],
            NO_ROLE_IN_WORKSPACE,
        )
    if access.model not in models:
        return _deny(
            [*access.rules, "check.invalid_for_model"],
            [f"a question valid in a {access.model} workspace"],
            NOT_VALID_FOR_MODEL,
        )
    return None


def decide_check(
    access: WorkspaceAccess | None,
    config: OrgConfig,
    grant: str,
    ref: ResourceRef | None = None,
) -> Decision:
    """Reference decision for ``check(user, workspace, grant, resource?)``."""
    models = question_models(grant, ref.type if ref is not None else None)
    early = _preamble(access, models)
    if early is not None:
        return early
    assert access is not None
    rules: set[str] = set(access.rules)
    missing = _space_gate(
        access,
        ref.space_id if ref is not None else None,
        ref.needs_space if ref is not None else False,
        rules,
    )
    matched: list[Match] = []
    if access.model == "v2":
        if grant == READ:
            rules.add("v2.any_role_reads")
            matched.extend(
                Match(g.group_id, "a role (read)", tuple((b.role_id, b.source) for b in g.bindings))
                for g in access.groups
            )
        else:
            scope = WORKSPACE if ref is None else REF_TYPE_TO_SCOPE[ref.type]
            needed = [grant]
            if access.approvals_required and (scope, grant) in APPROVAL_SPLIT:
                rules.add("approvals.split")
                needed = list(APPROVAL_SPLIT[(scope, grant)])
            elif not access.approvals_required and (scope, grant) in SPLIT_HALVES:
                rules.add("approvals.off_merge_per_group")
                needed = [SPLIT_HALVES[(scope, grant)][1]]
            if access.is_admin:
                rules.add("v2.admin_holds_every_grant")
            for name in needed:
                _subset_rules(access, config, (scope, name), ref, rules)
                m = _holds(access, config, scope, name, ref)
                if m is None:
                    why = _why_not(access, scope, name, ref)
                    missing.add(why, _missing_grant(name, ref, why))
                else:
                    _match_rules(m, rules)
                    matched.append(m)
    else:
        assert ref is not None and access.legacy is not None
        rules.add("legacy.one_role_per_user")
        ok = (ref.type, grant) in access.legacy.actions
        conditioned = False
        if not ok:
            for rtype, acts, conds in access.legacy.conditional:
                if rtype == ref.type and grant in acts:
                    rules.add("legacy.label_conditions")
                    conditioned = True
                    if labels_match(conds, ref.labels):
                        ok = True
                        break
        _legacy_rules(access.legacy_role, grant, ref.type, rules)
        if ok:
            matched.append(_legacy_match(access, f"{grant} on {_ref_text(ref)}"))
        elif conditioned:
            missing.add(
                LABELS_NOT_MATCHED,
                f"{grant} on {_ref_text(ref)}: role {access.legacy_role!r} allows it only on "
                "resources whose labels meet its conditions",
            )
        else:
            missing.add(GRANT_MISSING, f"{grant} on {ref.type} in role {access.legacy_role!r}")
    return missing.decision(rules, matched)


def _match_rules(m: Match, rules: set[str]) -> None:
    if ":* " in f"{m.grant} " or m.grant.endswith(":*"):
        rules.add("v2.wildcard_resource")
    if any(role in V2_PREBUILT and role != "admin" for role, _ in m.provenance):
        rules.add("v2.prebuilt_table")


def _subset_rules(
    access: WorkspaceAccess,
    config: OrgConfig,
    grant: tuple[str, str],
    ref: ResourceRef | None,
    rules: set[str],
) -> None:
    """Name the subset rules when a subset-limited grant takes part in the decision."""
    scope, name = grant
    if scope != PARENT_MODEL or ref is None or access.root_id is None:
        return
    limits = [
        e.limit for g in access.groups for e in g.grants if e.limit is not None and e.name == name
    ]
    if not limits:
        return
    cats = config.categories_of(access.root_id, ref.id) if ref.id is not None else ()
    if any(required and not lim.values_for(c) for c, required in cats for lim in limits):
        rules.add("subsets.required_without_value_denies")
    if any(not required for _, required in cats):
        rules.add("subsets.optional_allows_unsubsetted")
    if ref.subsets is not None and any(
        value not in lim.values_for(c) for c, value in ref.subsets for lim in limits
    ):
        rules.add("subsets.only_chosen_values")
    known = {c for c, _ in cats}
    if ref.subsets is not None and any(c not in known for c, _ in ref.subsets):
        rules.add("subsets.unknown_category_denied")


def _legacy_rules(role: str | None, action: str, rtype: str, rules: set[str]) -> None:
    if role == L_DRAFT_CONTRIBUTOR and rtype in ("model", "sync"):
        rules.add("legacy.full_star_is_draft")
    if role == L_AUDIENCE_EDITOR and rtype == "sync":
        rules.add("legacy.limited_excludes_enable_start")
    if action == "approve" and rtype in ("model", "sync"):
        rules.add("legacy.approve_models_syncs")
    if action in ("preview", "debugger"):
        rules.add("legacy.read_implies_preview_debugger")


def _legacy_match(access: WorkspaceAccess, what: str) -> Match:
    for g in access.groups:
        for b in g.bindings:
            if b.role_id == access.legacy_role:
                return Match(g.group_id, f"{what} (role {b.role_id})", ((b.role_id, b.source),))
    return Match("", what, ())  # pragma: no cover - chosen role always has a binding


def validate_sync_question(sync: SyncRef, action: str) -> frozenset[str]:
    models: set[str] = set()
    if action in V2_SYNC_ACTIONS and sync.source.type in ("source", "parent_model", "audience"):
        models.add("v2")
    if action in LEGACY_SYNC_ACTIONS and sync.source.type == "source":
        models.add("legacy")
    if sync.destination.type != "destination":
        raise UnknownGrantError("destination.type", "a sync's destination must be a destination")
    if not models:
        if action not in V2_SYNC_ACTIONS and action not in LEGACY_SYNC_ACTIONS:
            v2_sync_action(action)  # raises with the action named
        sync_source_scope(sync.source.type)  # raises with the source type named
    return frozenset(models)


def decide_sync(
    access: WorkspaceAccess | None, config: OrgConfig, sync: SyncRef, action: str
) -> Decision:
    """Reference decision for ``check_sync`` (contract §2.3 / §3)."""
    models = validate_sync_question(sync, action)
    early = _preamble(access, models)
    if early is not None:
        return early
    assert access is not None
    rules: set[str] = set(access.rules)
    missing = _space_gate(access, sync.space_id, True, rules)
    matched: list[Match] = []
    if access.model == "v2":
        act = v2_sync_action(action)
        if act == "read":
            rules.add("v2.any_role_reads")
        else:
            scope = sync_source_scope(sync.source.type)
            if access.approvals_required:
                rules.add("approvals.split")
            if access.is_admin:
                rules.add("v2.admin_holds_every_grant")
            if act == "trigger" and scope == PARENT_MODEL:
                rules.add("v2.audience_sync_trigger_both_sides")
            src_ref = ResourceRef(scope, sync.source.id, subsets=sync.source.subsets)
            for sg, dg in v2_sync_requirements(scope, act, access.approvals_required):
                if sg is not None and dg is not None:
                    rules.add("v2.no_mix_and_match")
                found = None
                for g in access.groups:
                    ms = (
                        None
                        if sg is None
                        else _group_holds(g, config, access, (scope, sg), src_ref)
                    )
                    md = (
                        None
                        if dg is None
                        else _group_holds(g, config, access, ("destination", dg), sync.destination)
                    )
                    if (sg is None or ms is not None) and (dg is None or md is not None):
                        found = [m for m in (ms, md) if m is not None]
                        break
                if sg is not None:
                    _subset_rules(access, config, (scope, sg), src_ref, rules)
                for m in found or ():
                    _match_rules(m, rules)
                if found is None:
                    parts = []
                    if sg is not None:
                        parts.append(f"{sg} on {scope}:{sync.source.id}")
                    if dg is not None:
                        parts.append(f"{dg} on destination:{sync.destination.id}")
                    same = " from the same group" if len(parts) == 2 else ""
                    missing.add(
                        _sync_why_not(access, config, (scope, sg, src_ref), dg, sync.destination),
                        " and ".join(parts) + same,
                    )
                else:
                    matched.extend(found)
    else:
        _legacy_sync(access, config, sync, action, (rules, matched, missing))
    return missing.decision(rules, matched)


def _sync_why_not(
    access: WorkspaceAccess,
    config: OrgConfig,
    src: tuple[str, str | None, ResourceRef],
    dg: str | None,
    dst: ResourceRef,
) -> str:
    """Why no single group holds a sync's pair: each side is held, but by different
    groups (``not_same_group``), or the first side nobody holds says why."""
    scope, sg, src_ref = src
    sides = [(scope, sg, src_ref), ("destination", dg, dst)]
    held = [
        name is None or _holds(access, config, sc, name, ref) is not None for sc, name, ref in sides
    ]
    if all(held):
        return NOT_SAME_GROUP
    for (sc, name, ref), ok in zip(sides, held, strict=True):
        if not ok and name is not None:
            return _why_not(access, sc, name, ref)
    return GRANT_MISSING  # pragma: no cover - some side is not held


def _legacy_sync(
    access: WorkspaceAccess,
    config: OrgConfig,
    sync: SyncRef,
    action: str,
    out: tuple[set[str], list[Match], _Missing],
) -> None:
    rules, matched, missing = out
    act = legacy_sync_action(action)
    rules.add("legacy.use_needs_read")
    checks: list[tuple[str, ResourceRef]] = [
        (act, ResourceRef("sync", sync.id, sync.space_id, sync.labels)),
        ("read", sync.source),
        ("read", sync.destination),
    ]
    if sync.model is not None:
        checks.append(("read", sync.model))
    for a, r in checks:
        # Each side is judged in the sync's Space (gated once above), as the compiled
        # check does: without it a Spaces-enabled workspace asked for a space_id again.
        d = decide_check(access, config, a, ResourceRef(r.type, r.id, sync.space_id, r.labels))
        rules.update(d.rules)
        matched.extend(d.matched)
        missing.extend(d)


@dataclass(frozen=True, slots=True)
class ModelEditDecision:
    """Editing a model: allowed iff the model itself and every listed sync may be edited."""

    allowed: bool
    model_allowed: bool
    denied_syncs: tuple[int, ...]
    """Indexes (into the caller's list) of the syncs that block the edit."""
    rules: tuple[str, ...] = ("v2.model_edit_covers_syncs",)


def model_edit_grant(access_model: str, model: ResourceRef, action: str) -> tuple[str, ResourceRef]:
    """The single-resource check for editing ``model`` (v2: on its source; legacy: the model)."""
    if access_model == "v2":
        name = "draft_models_syncs" if action == "draft" else "configure_models_syncs"
        return name, ResourceRef("source", model.id)
    if model.type != "model":
        raise UnknownGrantError("model.type", "a legacy model edit is checked on a 'model' ref")
    return "update", model


def decide_model_edit(
    access: WorkspaceAccess | None,
    config: OrgConfig,
    model: ResourceRef,
    syncs: Sequence[SyncRef],
    action: str = "configure",
) -> ModelEditDecision:
    """Rule v2.model_edit_covers_syncs: the model and every sync using it, in one answer."""
    if action not in ("configure", "draft"):
        raise UnknownGrantError("action", "model edits are 'configure' or 'draft'")
    if access is None or not access.has_role:
        return ModelEditDecision(False, False, tuple(range(len(syncs))))
    grant, ref = model_edit_grant(access.model, model, action)
    model_ok = decide_check(access, config, grant, ref).allowed
    denied = tuple(
        i for i, s in enumerate(syncs) if not decide_sync(access, config, s, action).allowed
    )
    return ModelEditDecision(model_ok and not denied, model_ok, denied)
