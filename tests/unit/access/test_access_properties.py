"""Hypothesis properties of the access model (contract invariants + cache equivalence)."""

from __future__ import annotations

import contextlib
import os
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.access import (
    REASONS,
    AccessModel,
    Compiled,
    OrgConfig,
    ResourceRef,
    SyncRef,
    UnknownGrantError,
    User,
    check_compiled,
    check_compiled_reason,
    check_model_edit_compiled,
    check_sync_compiled,
    check_sync_compiled_reason,
    compile_for_groups,
    decode_compiled,
    decode_workspace_map,
    encode_compiled,
    encode_workspace_map,
    visible_spaces_compiled,
)
from tests.unit.access.strategies import GROUPS, group_sets, org_configs, questions, sync_questions

# Kept small so the unit suite stays fast; raise it for a soak run, e.g.
# ACCESS_PROPERTY_EXAMPLES=2000 pytest tests/unit/access/test_access_properties.py
CheckArgs = tuple[str, ResourceRef | None]
SyncArgs = tuple[SyncRef, str]
Answer = bool | str  # the decision, or "raise" for an unknown grant

EXAMPLES = int(os.environ.get("ACCESS_PROPERTY_EXAMPLES", "20"))
FAST = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _user(groups: frozenset[str], active: bool = True) -> User:
    return User("u", active=active, group_ids=groups)


def _rich(am: AccessModel, u: User, ws: str, grant: str, ref: ResourceRef | None) -> Answer:
    try:
        return am.check(u, ws, grant, ref)
    except UnknownGrantError:
        return "raise"


def _compiled(entry: Compiled | None, grant: str, ref: ResourceRef | None) -> Answer:
    try:
        return check_compiled(entry, grant, ref)
    except UnknownGrantError:
        return "raise"


def _rich_reason(am: AccessModel, u: User, ws: str, grant: str, ref: ResourceRef | None) -> str:
    try:
        return am.decide(u, ws, grant, ref).reason
    except UnknownGrantError:
        return "raise"


def _compiled_reason(entry: Compiled | None, grant: str, ref: ResourceRef | None) -> str:
    try:
        return check_compiled_reason(entry, grant, ref)
    except UnknownGrantError:
        return "raise"


@FAST
@given(
    org_configs(),
    group_sets,
    st.lists(questions(), min_size=1, max_size=12),
    st.lists(sync_questions(), max_size=6),
)
def test_compiled_decisions_equal_evaluator(
    cfg: OrgConfig, groups: frozenset[str], qs: list[CheckArgs], sqs: list[SyncArgs]
) -> None:
    am = AccessModel(cfg)
    u = _user(groups)
    compiled = compile_for_groups(groups, cfg)
    roundtrip = decode_workspace_map(encode_workspace_map(compiled))
    for ws in [w.id for w in cfg.workspaces] + ["unknown"]:
        entry = compiled.get(ws)
        entry2 = roundtrip.get(ws)
        if entry is not None:
            assert decode_compiled(encode_compiled(entry)) == entry
        assert (
            am.visible_spaces(u, ws)
            == visible_spaces_compiled(entry)
            == visible_spaces_compiled(entry2)
        )
        for grant, ref in qs:
            resolved = None if ref is None else cfg.with_registered_labels(ws, ref)
            answer = _rich(am, u, ws, grant, ref)
            assert _compiled(entry, grant, resolved) == answer, (ws, grant, ref)
            assert _compiled(entry2, grant, resolved) == answer, (ws, grant, ref)
            reason = _rich_reason(am, u, ws, grant, ref)
            assert reason in (*REASONS, "raise")
            assert (reason == "granted") == (answer is True) or reason == "raise"
            assert _compiled_reason(entry, grant, resolved) == reason, (ws, grant, ref)
            assert _compiled_reason(entry2, grant, resolved) == reason, (ws, grant, ref)
        for sync, action in sqs:
            resolved_sync = sync.with_registered_labels(ws, cfg)
            expected: Answer
            try:
                decision = am.decide_sync(u, ws, sync, action)
                expected, expected_reason = decision.allowed, decision.reason
            except UnknownGrantError:
                expected = expected_reason = "raise"
            for e in (entry, entry2):
                got: Answer
                try:
                    got = check_sync_compiled(e, resolved_sync, action)
                    got_reason = check_sync_compiled_reason(e, resolved_sync, action)
                except UnknownGrantError:
                    got = got_reason = "raise"
                assert got == expected, (ws, sync, action)
                assert got_reason == expected_reason, (ws, sync, action)
        if sqs and entry is not None:
            model_ref = sqs[0][0].source if entry.model == "v2" else None
            if model_ref is not None and model_ref.type == "source":
                syncs = [s for s, _ in sqs if s.source.type == "source"]
                rich = am.check_model_edit(u, ws, model_ref, syncs)
                assert (
                    check_model_edit_compiled(
                        entry, model_ref, [s.with_registered_labels(ws, cfg) for s in syncs]
                    )
                    == rich
                )


@FAST
@given(
    org_configs(),
    group_sets,
    st.sampled_from(GROUPS),
    st.lists(questions(), min_size=1, max_size=12),
    st.lists(sync_questions(), max_size=6),
)
def test_v2_adding_a_group_never_removes_a_permission(
    cfg: OrgConfig,
    groups: frozenset[str],
    extra: str,
    qs: list[CheckArgs],
    sqs: list[SyncArgs],
) -> None:
    am = AccessModel(cfg)
    before, after = _user(groups), _user(groups | {extra})
    for ws in cfg.workspaces:
        root = cfg.roots.get(ws.id)
        if root is None or cfg.workspace_by_id[root].permissions_model != "v2":
            continue
        vb, va = am.visible_spaces(before, ws.id), am.visible_spaces(after, ws.id)
        assert va == "all" or (vb != "all" and vb <= va)
        for grant, ref in qs:
            if _rich(am, before, ws.id, grant, ref) is True:
                assert am.check(after, ws.id, grant, ref) is True
        for sync, action in sqs:
            try:
                if am.decide_sync(before, ws.id, sync, action).allowed:
                    assert am.decide_sync(after, ws.id, sync, action).allowed
            except UnknownGrantError:
                pass


@FAST
@given(
    org_configs(),
    group_sets,
    st.lists(questions(), min_size=1, max_size=8),
    st.lists(sync_questions(), max_size=4),
    st.booleans(),
)
def test_deactivation_removes_everything(
    cfg: OrgConfig,
    groups: frozenset[str],
    qs: list[CheckArgs],
    sqs: list[SyncArgs],
    deleted: bool,
) -> None:
    am = AccessModel(cfg)
    gone = User("u", active=deleted, deleted=deleted, group_ids=groups)
    assert am.compile_user(gone) == {}
    for ws in cfg.workspaces:
        assert am.visible_spaces(gone, ws.id) == frozenset()
        for grant, ref in qs:
            assert _rich(am, gone, ws.id, grant, ref) in (False, "raise")
        for sync, action in sqs:
            with contextlib.suppress(UnknownGrantError):
                assert am.decide_sync(gone, ws.id, sync, action).allowed is False


@FAST
@given(org_configs(), group_sets, st.lists(sync_questions(), min_size=1, max_size=8))
def test_sync_pair_allowed_iff_one_group_allows_it(
    cfg: OrgConfig, groups: frozenset[str], sqs: list[SyncArgs]
) -> None:
    am = AccessModel(cfg)
    for ws in cfg.workspaces:
        root = cfg.roots.get(ws.id)
        if root is None:
            continue
        rw = cfg.workspace_by_id[root]
        if rw.permissions_model != "v2" or rw.spaces_enabled:
            continue  # Space visibility is per user by decision, not per group
        for sync, action in sqs:
            if action not in ("draft", "approve") and not (
                action == "configure" and not rw.approvals_required
            ):
                continue
            whole = am.decide_sync(_user(groups), ws.id, sync, action).allowed
            single = any(
                am.decide_sync(_user(frozenset({g})), ws.id, sync, action).allowed for g in groups
            )
            assert whole == single


@FAST
@given(org_configs(), group_sets, st.sampled_from(GROUPS))
def test_admin_sees_every_space(cfg: OrgConfig, groups: frozenset[str], admin_group: str) -> None:
    from models.access import RoleBinding

    roots = [w for w in cfg.workspaces if w.parent_workspace_id is None]
    extra = tuple(
        RoleBinding(admin_group, w.id, "admin" if w.permissions_model == "v2" else "legacy_admin")
        for w in roots
    )
    cfg2 = OrgConfig(
        workspaces=cfg.workspaces,
        spaces=cfg.spaces,
        roles=cfg.roles,
        org_admins=cfg.org_admins,
        role_bindings=cfg.role_bindings + extra,
        space_assignments=cfg.space_assignments,
    )
    am = AccessModel(cfg2)
    u = _user(groups | {admin_group})
    for w in cfg2.workspaces:
        if cfg2.roots.get(w.id) is not None:
            assert am.visible_spaces(u, w.id) == "all"


@FAST
@given(
    org_configs(),
    group_sets,
    st.lists(questions(), min_size=1, max_size=6),
    st.randoms(use_true_random=False),
)
def test_determinism(
    cfg: OrgConfig, groups: frozenset[str], qs: list[CheckArgs], rnd: random.Random
) -> None:
    u = _user(groups)
    shuffled = OrgConfig(
        workspaces=cfg.workspaces,
        spaces=tuple(rnd.sample(cfg.spaces, len(cfg.spaces))),
        roles=tuple(rnd.sample(cfg.roles, len(cfg.roles))),
        org_admins=cfg.org_admins,
        role_bindings=tuple(rnd.sample(cfg.role_bindings, len(cfg.role_bindings))),
        space_assignments=tuple(rnd.sample(cfg.space_assignments, len(cfg.space_assignments))),
        subset_categories=cfg.subset_categories,
        resources=cfg.resources,
    )
    assert encode_workspace_map(compile_for_groups(groups, cfg)) == encode_workspace_map(
        compile_for_groups(groups, shuffled)
    )
    a, b = AccessModel(cfg), AccessModel(shuffled)
    for ws in cfg.workspaces:
        for grant, ref in qs:
            try:
                ea = a.explain(u, ws.id, grant, ref)
            except UnknownGrantError:
                continue
            eb = b.explain(u, ws.id, grant, ref)
            assert ea == eb
            assert ea == AccessModel(cfg).explain(u, ws.id, grant, ref)


def test_sync_ref_of_accepts_ids() -> None:
    assert SyncRef.of("s", "d").source.type == "source"
