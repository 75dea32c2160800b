"""Layer: pure. Decisions answered from the compiled form alone (what the Redis check client runs).

Mirrors ``decisions.py`` over tokens; property tests hold the two identical.
``None`` as the compiled entry means "no access in this workspace" (the group
set has no role there, or the user is inactive/deleted/unknown).
"""

from __future__ import annotations

from collections.abc import Sequence

from .catalogue import labels_match
from .compiled import Compiled, PairSet
from .decisions import ModelEditDecision, model_edit_grant, validate_sync_question
from .errors import UnknownGrantError
from .evaluator import ALL, VisibleSpaces
from .grants import (
    APPROVAL_SPLIT,
    PARENT_MODEL,
    READ,
    REF_TYPE_TO_SCOPE,
    SPLIT_HALVES,
    WORKSPACE,
    legacy_token,
    question_models,
    v2_code,
)
from .inputs import ResourceRef
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
)
from .refs import SyncRef
from .roles import WILDCARD
from .subsets import limit_allows
from .sync_rules import legacy_sync_action, sync_source_scope, v2_sync_action, v2_sync_requirements


def visible_spaces_compiled(c: Compiled | None) -> VisibleSpaces:
    """Visible Space ids, or "all"; no access: the empty set."""
    if c is None:
        return frozenset()
    return ALL if c.spaces is None else c.spaces


def _space_reason(c: Compiled, space_id: str | None, needs_space: bool) -> str:
    if c.spaces is None:
        return GRANTED
    if space_id is None:
        return SPACE_ID_REQUIRED if needs_space else GRANTED
    return GRANTED if space_id in c.spaces else SPACE_NOT_VISIBLE


def _hold_reason(
    c: Compiled,
    tokens: frozenset[str],
    limited: frozenset[tuple[str, int]] | None,
    grant: tuple[str, str],
    ref: ResourceRef | None,
) -> str:
    """``granted``; ``subset_not_allowed`` when only subset-limited grants cover the
    resource (in ``limited``, or anywhere when None) and none allows it; else
    ``grant_missing``."""
    scope, name = grant
    code = v2_code(scope, name)
    if scope == WORKSPACE:
        return GRANTED if code in tokens else GRANT_MISSING
    rid = ref.id if ref is not None else None
    wildcard = f"{code}:{WILDCARD}"
    exact = None if rid is None else f"{code}:{rid}"
    if wildcard in tokens or (exact is not None and exact in tokens):
        return GRANTED
    by_base = c.limited_by_base
    candidates = [*by_base.get(wildcard, ()), *(by_base.get(exact, ()) if exact else ())]
    if not candidates:
        return GRANT_MISSING
    cats = c.categories_by_model.get(rid, ()) if scope == PARENT_MODEL and rid else ()
    subsets = ref.subsets if ref is not None else None
    reason = GRANT_MISSING
    for base in (wildcard, exact):
        if base is None:
            continue
        for k in by_base.get(base, ()):
            if limited is not None and (base, k) not in limited:
                continue
            if limit_allows(cats, c.limits[k], subsets):
                return GRANTED
            reason = SUBSET_NOT_ALLOWED
    return reason


def _holds(
    c: Compiled,
    tokens: frozenset[str],
    limited: frozenset[tuple[str, int]] | None,
    grant: tuple[str, str],
    ref: ResourceRef | None,
) -> bool:
    return _hold_reason(c, tokens, limited, grant, ref) == GRANTED


def check_compiled(c: Compiled | None, grant: str, ref: ResourceRef | None = None) -> bool:
    """``check`` from the compiled entry of the asked workspace."""
    return check_compiled_reason(c, grant, ref) == GRANTED


def check_compiled_reason(c: Compiled | None, grant: str, ref: ResourceRef | None = None) -> str:
    """``check``'s reason code (``models.access.reasons``): ``granted`` or why not.
    No entry (no role in the workspace) is ``no_role_in_workspace``; the caller knows
    whether the user is unknown, inactive or deleted instead."""
    models = question_models(grant, ref.type if ref is not None else None)
    if c is None:
        return NO_ROLE_IN_WORKSPACE
    if c.model not in models:
        return NOT_VALID_FOR_MODEL
    if ref is not None:
        space = _space_reason(c, ref.space_id, ref.needs_space)
        if space != GRANTED:
            return space
    if c.model == "v2":
        if grant == READ or c.admin:
            return GRANTED
        scope = WORKSPACE if ref is None else REF_TYPE_TO_SCOPE[ref.type]
        needed: Sequence[str] = (grant,)
        if c.approvals and (scope, grant) in APPROVAL_SPLIT:
            needed = APPROVAL_SPLIT[(scope, grant)]
        elif not c.approvals and (scope, grant) in SPLIT_HALVES:
            needed = (SPLIT_HALVES[(scope, grant)][1],)
        for n in needed:
            reason = _hold_reason(c, c.tokens, None, (scope, n), ref)
            if reason != GRANTED:
                return reason
        return GRANTED
    assert ref is not None
    return _legacy_reason(c, grant, ref)


def _legacy_reason(c: Compiled, action: str, ref: ResourceRef) -> str:
    if legacy_token(ref.type, action) in c.tokens:
        return GRANTED
    conditioned = False
    for rtype, acts, conds in c.conditional:
        if rtype == ref.type and action in acts:
            if labels_match(conds, ref.labels):
                return GRANTED
            conditioned = True
    return LABELS_NOT_MATCHED if conditioned else GRANT_MISSING


def _pair_ok(
    c: Compiled,
    pair: PairSet,
    *,
    src_grant: tuple[str, str],
    src: ResourceRef,
    dst_grant: tuple[str, str],
    dst: ResourceRef,
) -> bool:
    tokens, limited = pair
    return _holds(c, tokens, limited, src_grant, src) and _holds(c, tokens, limited, dst_grant, dst)


def check_sync_compiled(c: Compiled | None, sync: SyncRef, action: str) -> bool:
    """``check_sync`` from the compiled entry (same-group rule via per-group pair sets)."""
    return check_sync_compiled_reason(c, sync, action) == GRANTED


def check_sync_compiled_reason(c: Compiled | None, sync: SyncRef, action: str) -> str:
    """``check_sync``'s reason code: ``granted`` or why not (see ``check_compiled_reason``)."""
    models = validate_sync_question(sync, action)
    if c is None:
        return NO_ROLE_IN_WORKSPACE
    if c.model not in models:
        return NOT_VALID_FOR_MODEL
    space = _space_reason(c, sync.space_id, True)
    if space != GRANTED:
        return space
    if c.model == "v2":
        act = v2_sync_action(action)
        if act == "read" or c.admin:
            return GRANTED
        scope = sync_source_scope(sync.source.type)
        src = ResourceRef(scope, sync.source.id, subsets=sync.source.subsets)
        for sg, dg in v2_sync_requirements(scope, act, c.approvals):
            if sg is None and dg is None:  # pragma: no cover - not in the tables
                continue
            if sg is None:
                assert dg is not None
                reason = _hold_reason(c, c.tokens, None, ("destination", dg), sync.destination)
            elif dg is None:
                reason = _hold_reason(c, c.tokens, None, (scope, sg), src)
            elif any(
                _pair_ok(
                    c,
                    p,
                    src_grant=(scope, sg),
                    src=src,
                    dst_grant=("destination", dg),
                    dst=sync.destination,
                )
                for p in c.pair_sets
            ):
                reason = GRANTED
            else:
                reason = _pair_reason(c, (scope, sg), src, ("destination", dg), sync.destination)
            if reason != GRANTED:
                return reason
        return GRANTED
    act = legacy_sync_action(action)
    checks = [
        (act, ResourceRef("sync", sync.id, None, sync.labels)),
        ("read", ResourceRef(sync.source.type, sync.source.id, None, sync.source.labels)),
        (
            "read",
            ResourceRef(sync.destination.type, sync.destination.id, None, sync.destination.labels),
        ),
    ]
    if sync.model is not None:
        checks.append(
            ("read", ResourceRef(sync.model.type, sync.model.id, None, sync.model.labels))
        )
    for a, r in checks:
        question_models(a, r.type)
        reason = _legacy_reason(c, a, r)
        if reason != GRANTED:
            return reason
    return GRANTED


def _pair_reason(
    c: Compiled,
    src_grant: tuple[str, str],
    src: ResourceRef,
    dst_grant: tuple[str, str],
    dst: ResourceRef,
) -> str:
    """No single group holds both sides: held by different groups (``not_same_group``),
    or the first side nobody holds says why."""
    src_reason = _hold_reason(c, c.tokens, None, src_grant, src)
    dst_reason = _hold_reason(c, c.tokens, None, dst_grant, dst)
    if src_reason == GRANTED and dst_reason == GRANTED:
        return NOT_SAME_GROUP
    return src_reason if src_reason != GRANTED else dst_reason


def check_model_edit_compiled(
    c: Compiled | None, model: ResourceRef, syncs: Sequence[SyncRef], action: str = "configure"
) -> ModelEditDecision:
    """Editing a model and every sync using it, from the compiled entry."""
    if action not in ("configure", "draft"):
        raise UnknownGrantError("action", "model edits are 'configure' or 'draft'")
    if c is None:
        return ModelEditDecision(False, False, tuple(range(len(syncs))))
    grant, ref = model_edit_grant(c.model, model, action)
    model_ok = check_compiled(c, grant, ref)
    denied = tuple(i for i, s in enumerate(syncs) if not check_sync_compiled(c, s, action))
    return ModelEditDecision(model_ok and not denied, model_ok, denied)
