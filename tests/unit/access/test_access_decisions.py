"""Every contract "Decision" and behaviour of §2.3, §4, §6 as a named, tested rule."""

from __future__ import annotations

import pytest

from models.access import (
    RULES,
    AccessModel,
    OrgAdminBinding,
    OrgConfig,
    ParentModelSubsets,
    Question,
    RegisteredResource,
    ResourceGrant,
    ResourceRef,
    RoleBinding,
    Space,
    SpaceAssignment,
    SubsetCategory,
    SubsetLimit,
    SyncRef,
    UnknownGrantError,
    User,
    V2Role,
    Workspace,
    check_sync_compiled_reason,
    parse_legacy_role,
)
from tests.unit.access.builders import dst, one_role, pm, spaces_config, src, user

# --- users -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "who",
    [None, user("g1", active=False), user("g1", deleted=True)],
    ids=["unknown", "inactive", "deleted"],
)
def test_inactive_deleted_unknown_users_always_denied(who: User | None) -> None:
    am = one_role("admin")
    assert am.check(who, "w1", "create_sources") is False
    assert am.check_sync(who, "w1", "S", "D", "configure") is False
    assert am.visible_spaces(who, "w1") == frozenset()
    assert am.check_model_edit(who, "w1", "S", [SyncRef.of("S", "D")]).allowed is False
    assert am.compile_user(who) == {}
    ex = am.explain(who, "w1", "create_sources")
    assert not ex.allowed and "users.inactive_or_deleted_denied" in ex.rules


def test_user_without_role_sees_nothing() -> None:
    am = one_role("admin")
    u = user("other")
    assert am.check(u, "w1", "read") is False
    assert am.visible_spaces(u, "w1") == frozenset()
    assert "groups.no_role_sees_nothing" in am.explain(u, "w1", "read").rules


def test_unknown_workspace_is_a_deny() -> None:
    assert one_role("admin").check(user("g1"), "nope", "create_sources") is False


def test_unknown_grant_raises_but_other_model_grant_denies() -> None:
    am = one_role("admin")
    with pytest.raises(UnknownGrantError) as err:
        am.check(user("g1"), "w1", "fly")
    assert err.value.field == "grant"
    with pytest.raises(UnknownGrantError):
        am.check(user("g1"), "w1", "view_data", dst())  # a source grant asked on a destination
    # valid legacy question in a v2 workspace: deny, with the rule named
    assert am.check(user("g1"), "w1", "start", ResourceRef("sync", "y")) is False
    ex = am.explain(user("g1"), "w1", "start", ResourceRef("sync", "y"))
    assert "check.invalid_for_model" in ex.rules


# --- org admin / environments ---------------------------------------------------------


def test_org_admin_is_admin_everywhere_including_future_workspaces() -> None:
    base = OrgConfig(
        workspaces=(Workspace("w1"), Workspace("w2", permissions_model="legacy")),
        org_admins=(OrgAdminBinding("ga", "rule-admins"),),
    )
    u = user("ga")
    am = AccessModel(base)
    assert am.check(u, "w1", "manage_workspace")
    assert am.check(u, "w2", "update", ResourceRef("account", "acct"))
    later = OrgConfig(
        workspaces=(*base.workspaces, Workspace("w3", spaces_enabled=True)),
        spaces=(Space("s9", "w3"),),
        org_admins=base.org_admins,
    )
    am2 = AccessModel(later)
    assert am2.check(u, "w3", "manage_source", src("any"))
    assert am2.visible_spaces(u, "w3") == "all"
    ex = am2.explain(u, "w3", "manage_workspace")
    assert "org_admin.workspace_admin_everywhere" in ex.rules
    assert ex.bindings[0].source == "org_admin:rule-admins"


def test_environment_inherits_parent_and_ignores_own_bindings() -> None:
    cfg = OrgConfig(
        workspaces=(
            Workspace("prod", spaces_enabled=True, approvals_required=True),
            Workspace("dev", parent_workspace_id="prod"),
            Workspace("dev2", parent_workspace_id="dev"),
        ),
        spaces=(Space("s1", "prod"),),
        role_bindings=(
            RoleBinding("g1", "prod", "editor"),
            RoleBinding("g2", "dev", "admin"),  # ignored: environments share the parent's roster
        ),
        space_assignments=(SpaceAssignment("g1", "prod", "s1"),),
    )
    am = AccessModel(cfg)
    for ws in ("prod", "dev", "dev2"):
        assert am.check(user("g1"), ws, "create_sources")
        assert am.visible_spaces(user("g1"), ws) == frozenset({"s1"})
        # approvals of the parent apply
        assert am.check(user("g1"), ws, "approve_syncs", dst())
        assert am.check(user("g2"), ws, "manage_workspace") is False
    ex = am.explain(user("g1", "g2"), "dev", "create_sources")
    assert "environments.inherit_parent" in ex.rules
    assert ex.root_workspace_id == "prod"
    assert [i.rule for i in ex.ignored_bindings] == ["environments.inherit_parent"]


def test_environment_cycle_means_no_access() -> None:
    cfg = OrgConfig(
        workspaces=(
            Workspace("a", parent_workspace_id="b"),
            Workspace("b", parent_workspace_id="a"),
        ),
        role_bindings=(RoleBinding("g1", "a", "admin"),),
    )
    assert AccessModel(cfg).check(user("g1"), "a", "create_sources") is False


def test_role_of_other_model_is_ignored_and_reported() -> None:
    cfg = OrgConfig(
        workspaces=(Workspace("w1", permissions_model="legacy"),),
        role_bindings=(RoleBinding("g1", "w1", "editor"), RoleBinding("g1", "w1", "ghost")),
    )
    am = AccessModel(cfg)
    assert am.check(user("g1"), "w1", "read", ResourceRef("source", "s")) is False
    ex = am.explain(user("g1"), "w1", "read", ResourceRef("source", "s"))
    assert {i.role_id for i in ex.ignored_bindings} == {"editor", "ghost"}
    assert "bindings.role_model_mismatch_ignored" in ex.rules


# --- spaces ------------------------------------------------------------------------------


def test_spaces_admins_see_all() -> None:
    am = AccessModel(spaces_config(role_bindings=(RoleBinding("g1", "w1", "admin"),)))
    assert am.visible_spaces(user("g1"), "w1") == "all"
    assert am.check(user("g1"), "w1", "configure_audiences_syncs", ResourceRef.audience("P", "s3"))
    assert "spaces.admins_see_all" in am.explain(user("g1"), "w1", "read").rules


def test_space_assignment_alone_grants_nothing() -> None:
    am = AccessModel(
        spaces_config(
            role_bindings=(RoleBinding("g1", "w1", "editor"),),
            space_assignments=(
                SpaceAssignment("g2", "w1", "s1"),
                SpaceAssignment("g1", "w1", "s2"),
            ),
        )
    )
    assert am.visible_spaces(user("g2"), "w1") == frozenset()
    assert am.check(user("g2"), "w1", "read") is False
    # g2 has no role, so its Space does not become visible even next to g1
    assert am.visible_spaces(user("g1", "g2"), "w1") == frozenset({"s2"})
    assert (
        "spaces.assignment_alone_grants_nothing" in am.explain(user("g1", "g2"), "w1", "read").rules
    )


def test_visibility_is_per_user_and_space_plus_grant() -> None:
    am = AccessModel(
        spaces_config(
            role_bindings=(RoleBinding("gv", "w1", "viewer"), RoleBinding("ge", "w1", "editor")),
            space_assignments=(SpaceAssignment("gv", "w1", "s1"),),
        )
    )
    # Space from the viewer group, grant from the editor group: allowed (visibility per user)
    u = user("gv", "ge")
    assert am.check(u, "w1", "configure_audiences_syncs", ResourceRef.audience("P", "s1"))
    assert am.check_sync(u, "w1", "S", "D", "configure", space_id="s1")
    # a Space nobody assigned: grant alone is not enough
    assert not am.check(u, "w1", "configure_audiences_syncs", ResourceRef.audience("P", "s2"))
    assert not am.check_sync(u, "w1", "S", "D", "configure", space_id="s2")
    # visible Space alone is not enough either
    assert not am.check(
        user("gv"), "w1", "configure_audiences_syncs", ResourceRef.audience("P", "s1")
    )
    # Space-scoped question without a space id: denied when Spaces are on
    assert not am.check(u, "w1", "configure_audiences_syncs", ResourceRef.audience("P", None))
    assert not am.check_sync(u, "w1", "S", "D", "configure")
    ex = am.explain(u, "w1", "configure_audiences_syncs", ResourceRef.audience("P", "s2"))
    assert "spaces.space_and_grant" in ex.rules and any("s2" in m for m in ex.missing)
    # shared resources need no Space
    assert am.check(u, "w1", "view_data", src())


def test_spaces_disabled_no_filter() -> None:
    am = one_role("viewer", spaces=False)
    assert am.visible_spaces(user("g1"), "w1") == "all"
    am2 = one_role("editor", spaces=False)
    assert am2.check_sync(user("g1"), "w1", "S", "D", "configure")
    assert am2.check(user("g1"), "w1", "configure_audiences_syncs", ResourceRef.audience("P", None))


# --- §2.3 same-group rule --------------------------------------------------------------


def _pair_role(rid: str, s: str, d: str, *, approvals_split: bool = False) -> V2Role:
    sg = (
        {"draft_models_syncs", "approve_models_syncs"}
        if approvals_split
        else {"configure_models_syncs"}
    )
    dg = {"draft_syncs", "approve_syncs"} if approvals_split else {"configure_syncs"}
    return V2Role(
        rid,
        rid,
        resource_grants=(
            ResourceGrant("source", s, frozenset(sg)),
            ResourceGrant("destination", d, frozenset(dg)),
        ),
    )


def _two_groups(approvals: bool = False) -> AccessModel:
    return AccessModel(
        OrgConfig(
            workspaces=(Workspace("w1", approvals_required=approvals),),
            roles=(_pair_role("r1", "A", "B"), _pair_role("r2", "C", "D")),
            role_bindings=(RoleBinding("g1", "w1", "r1"), RoleBinding("g2", "w1", "r2")),
        )
    )


@pytest.mark.parametrize("approvals", [False, True])
@pytest.mark.parametrize("action", ["configure", "draft", "approve", "delete"])
def test_no_mix_and_match(approvals: bool, action: str) -> None:
    am = _two_groups(approvals)
    u = user("g1", "g2")
    assert am.check_sync(u, "w1", "A", "B", action)
    assert am.check_sync(u, "w1", "C", "D", action)
    assert not am.check_sync(u, "w1", "A", "D", action)
    assert not am.check_sync(u, "w1", "C", "B", action)
    # the single-resource grants are a union
    assert am.check(u, "w1", "configure_models_syncs", src("A"))
    assert am.check(u, "w1", "configure_syncs", dst("D"))
    ex = am.explain_sync(u, "w1", SyncRef.of("A", "D"), action)
    assert "v2.no_mix_and_match" in ex.rules
    assert any("same group" in m for m in ex.missing)
    # each side is held, by different groups: the reason says so, on both paths
    assert ex.reason == "not_same_group"
    entry = am.compile_user(u)["w1"]
    assert check_sync_compiled_reason(entry, SyncRef.of("A", "D"), action) == "not_same_group"
    assert am.decide_sync(u, "w1", SyncRef.of("A", "X"), action).reason == "grant_missing"


def test_approval_variants_split_over_groups() -> None:
    drafter = V2Role(
        "drafter",
        "drafter",
        resource_grants=(
            ResourceGrant("source", "*", frozenset({"draft_models_syncs"})),
            ResourceGrant("destination", "*", frozenset({"draft_syncs"})),
        ),
    )
    approver = V2Role(
        "approver",
        "approver",
        resource_grants=(
            ResourceGrant("source", "*", frozenset({"approve_models_syncs"})),
            ResourceGrant("destination", "*", frozenset({"approve_syncs"})),
        ),
    )
    cfg = OrgConfig(
        workspaces=(Workspace("w1", approvals_required=True), Workspace("w2")),
        roles=(drafter, approver),
        role_bindings=(
            RoleBinding("gd", "w1", "drafter"),
            RoleBinding("ga", "w1", "approver"),
            RoleBinding("gd", "w2", "drafter"),
            RoleBinding("ga", "w2", "approver"),
        ),
    )
    am = AccessModel(cfg)
    assert am.check_sync(user("gd"), "w1", "S", "D", "draft")
    assert not am.check_sync(user("gd"), "w1", "S", "D", "approve")
    assert not am.check_sync(user("gd"), "w1", "S", "D", "configure")
    assert not am.check_sync(user("gd"), "w1", "S", "D", "delete")  # drafts may not delete
    assert am.check_sync(user("ga"), "w1", "S", "D", "approve")
    # draft (one group) then self-approve (another group) equals configure
    assert am.check_sync(user("gd", "ga"), "w1", "S", "D", "configure")
    # without approval flows a lone half grants nothing, and halves don't merge across groups
    assert not am.check_sync(user("gd"), "w2", "S", "D", "configure")
    assert not am.check_sync(user("gd", "ga"), "w2", "S", "D", "configure")
    assert not am.check(user("gd", "ga"), "w2", "configure_syncs", dst())
    assert (
        "approvals.off_merge_per_group"
        in am.explain(user("gd"), "w2", "configure_syncs", dst()).rules
    )


def test_halves_in_one_group_merge_without_approvals() -> None:
    both = V2Role(
        "both",
        "both",
        resource_grants=(
            ResourceGrant("destination", "*", frozenset({"draft_syncs"})),
            ResourceGrant("destination", "D1", frozenset({"approve_syncs"})),
        ),
    )
    am = one_role("both", roles=(both,))
    assert am.check(user("g1"), "w1", "configure_syncs", dst("D1"))
    assert not am.check(user("g1"), "w1", "configure_syncs", dst("D2"))


def test_draft_editor_without_approvals_cannot_configure() -> None:
    am = one_role("draft_editor", approvals=False)
    assert not am.check_sync(user("g1"), "w1", "S", "D", "configure")
    assert am.check(user("g1"), "w1", "configure_audiences_syncs", pm())
    am2 = one_role("draft_editor", approvals=True)
    assert am2.check_sync(user("g1"), "w1", "S", "D", "draft")
    assert not am2.check_sync(user("g1"), "w1", "S", "D", "approve")


def test_trigger_needs_destination_grant_only() -> None:
    trig = V2Role(
        "t", "t", resource_grants=(ResourceGrant("destination", "D", frozenset({"trigger_syncs"})),)
    )
    am = one_role("t", roles=(trig,))
    assert am.check_sync(user("g1"), "w1", "any-source", "D", "trigger")
    assert not am.check_sync(user("g1"), "w1", "any-source", "E", "trigger")
    assert am.check(user("g1"), "w1", "trigger_syncs", ResourceRef.sync_on("D", None))


def test_audience_syncs_same_group_and_trigger_both_sides() -> None:
    aud = V2Role(
        "aud",
        "aud",
        resource_grants=(
            ResourceGrant(
                "parent_model",
                "P",
                frozenset({"configure_audiences_syncs", "trigger_audience_syncs"}),
            ),
        ),
    )
    dest = V2Role(
        "dest",
        "dest",
        resource_grants=(
            ResourceGrant("destination", "D", frozenset({"configure_syncs", "trigger_syncs"})),
        ),
    )
    cfg = OrgConfig(
        workspaces=(Workspace("w1"),),
        roles=(aud, dest),
        role_bindings=(RoleBinding("g1", "w1", "aud"), RoleBinding("g2", "w1", "dest")),
    )
    am = AccessModel(cfg)
    audience = ResourceRef.audience("P", None)
    assert not am.check_sync(user("g1", "g2"), "w1", audience, "D", "configure")
    assert not am.check_sync(user("g1", "g2"), "w1", audience, "D", "trigger")
    cfg2 = OrgConfig(
        workspaces=cfg.workspaces,
        roles=cfg.roles,
        role_bindings=(RoleBinding("g1", "w1", "aud"), RoleBinding("g1", "w1", "dest")),
    )
    am2 = AccessModel(cfg2)
    assert am2.check_sync(user("g1"), "w1", audience, "D", "configure")
    assert am2.check_sync(user("g1"), "w1", audience, "D", "trigger")
    ex = am2.explain_sync(user("g1"), "w1", SyncRef.of(audience, "D"), "trigger")
    assert "v2.audience_sync_trigger_both_sides" in ex.rules


def test_model_edit_needs_every_sync() -> None:
    am = _two_groups()
    u = user("g1", "g2")
    syncs = [SyncRef.of("A", "B"), SyncRef.of("A", "D"), SyncRef.of("C", "D")]
    res = am.check_model_edit(u, "w1", "A", syncs)
    assert res.model_allowed and not res.allowed and res.denied_syncs == (1,)
    assert am.check_model_edit(u, "w1", "A", [SyncRef.of("A", "B")]).allowed
    assert not am.check_model_edit(user("g2"), "w1", "A", []).allowed


# --- subsets -------------------------------------------------------------------------------


def _subset_model(limit: dict[str, list[str]]) -> AccessModel:
    role = V2Role(
        "lim",
        "limited",
        resource_grants=(
            ResourceGrant(
                "parent_model",
                "P",
                frozenset({"view_parent_model_data", "configure_audiences_syncs"}),
                SubsetLimit.of(limit),
            ),
        ),
    )
    return AccessModel(
        OrgConfig(
            workspaces=(Workspace("w1"),),
            roles=(role,),
            role_bindings=(RoleBinding("g1", "w1", "lim"),),
            subset_categories=(
                ParentModelSubsets(
                    "w1", "P", (SubsetCategory("region", True), SubsetCategory("consent"))
                ),
            ),
        )
    )


def _aud(**subsets: list[str]) -> ResourceRef:
    return ResourceRef.audience("P", None, subsets)


def test_required_category_without_value_allows_no_audience() -> None:
    am = _subset_model({"consent": ["email"]})
    u = user("g1")
    for grant in ("view_parent_model_data", "configure_audiences_syncs"):
        assert not am.check(u, "w1", grant, pm("P"))
        assert not am.check(u, "w1", grant, _aud(region=["EU"]))
        assert not am.check(u, "w1", grant, _aud())


def test_required_category_with_values() -> None:
    am = _subset_model({"region": ["EU"]})
    u = user("g1")
    assert am.check(u, "w1", "configure_audiences_syncs", pm("P"))  # some audience possible
    assert am.check(u, "w1", "configure_audiences_syncs", _aud(region=["EU"]))
    assert not am.check(u, "w1", "configure_audiences_syncs", _aud(region=["EU", "US"]))
    assert not am.check(u, "w1", "configure_audiences_syncs", _aud(region=["US"]))
    assert not am.check(u, "w1", "configure_audiences_syncs", _aud())  # must use a region
    # non-required 'consent' with nothing chosen: only audiences using no consent subset
    assert not am.check(u, "w1", "configure_audiences_syncs", _aud(region=["EU"], consent=["sms"]))
    # category unknown to P
    assert not am.check(u, "w1", "configure_audiences_syncs", _aud(region=["EU"], tier=["gold"]))
    # other grants on P are not limited
    assert not am.check(u, "w1", "configure_journeys", pm("P"))


def test_non_required_category_chosen_values_or_none() -> None:
    am = _subset_model({"region": ["EU", "US"], "consent": ["email"]})
    u = user("g1")
    assert am.check(u, "w1", "view_parent_model_data", _aud(region=["US"], consent=["email"]))
    assert am.check(u, "w1", "view_parent_model_data", _aud(region=["US"]))
    assert not am.check(u, "w1", "view_parent_model_data", _aud(region=["US"], consent=["sms"]))


def test_unlimited_group_wins_union() -> None:
    am = _subset_model({})
    cfg = am.config
    cfg2 = OrgConfig(
        workspaces=cfg.workspaces,
        roles=cfg.roles,
        role_bindings=(*cfg.role_bindings, RoleBinding("g2", "w1", "editor")),
        subset_categories=cfg.subset_categories,
    )
    assert AccessModel(cfg2).check(
        user("g1", "g2"), "w1", "configure_audiences_syncs", _aud(region=["US"])
    )


# --- legacy label conditions ---------------------------------------------------------------


def _label_model() -> AccessModel:
    role = parse_legacy_role(
        "prod-syncs",
        "Prod sync operator",
        {
            "statements": [
                {"effect": "allow", "actions": ["read"], "resource": "*"},
                {
                    "effect": "allow",
                    "actions": ["start", "update"],
                    "resource": "sync",
                    "conditions": {"labels": {"environment": "production"}},
                },
            ]
        },
    )
    return AccessModel(
        OrgConfig(
            workspaces=(Workspace("w1", permissions_model="legacy"),),
            roles=(role,),
            role_bindings=(RoleBinding("g1", "w1", "prod-syncs"),),
            resources=(
                RegisteredResource(
                    "w1", "sync", "y-reg", frozenset({("environment", "production")})
                ),
            ),
        )
    )


def test_legacy_label_conditions() -> None:
    am = _label_model()
    u = user("g1")
    prod = frozenset({("environment", "production")})
    assert am.check(u, "w1", "start", ResourceRef("sync", "y1", labels=prod))
    assert not am.check(
        u, "w1", "start", ResourceRef("sync", "y1", labels=frozenset({("environment", "dev")}))
    )
    assert not am.check(u, "w1", "start", ResourceRef("sync", "y1"))  # labels unknown
    assert am.check(u, "w1", "start", ResourceRef("sync", "y-reg"))  # registered labels
    assert am.check(u, "w1", "read", ResourceRef("source", "s"))
    assert am.check(u, "w1", "preview", ResourceRef("model", "m"))  # read implies preview
    assert am.check_sync(u, "w1", "s", "d", "start", sync_id="y-reg")
    assert not am.check_sync(u, "w1", "s", "d", "start", sync_id="y-other")
    ex = am.explain(u, "w1", "start", ResourceRef("sync", "y1"))
    assert "legacy.label_conditions" in ex.rules and ex.missing


# --- batch, listings, conflicts, explain -----------------------------------------------------


def test_batch_who_what_and_conflicts() -> None:
    cfg = OrgConfig(
        workspaces=(Workspace("w1"), Workspace("w2", permissions_model="legacy")),
        role_bindings=(
            RoleBinding("g1", "w1", "editor"),
            RoleBinding("g2", "w1", "viewer"),
            RoleBinding("g1", "w2", "legacy_workspace_viewer"),
            RoleBinding("g2", "w2", "legacy_sync_editor", "rule-9"),
        ),
    )
    am = AccessModel(cfg)
    u1, u2, u3 = user("g1", uid="u1"), user("g2", uid="u2"), user("g1", "g2", uid="u3")
    assert am.check_many(
        u1, [Question("w1", "create_sources"), Question("w1", "configure_agents")]
    ) == [True, False]
    assert am.check_sync_many(u1, "w1", [SyncRef.of("S", "D")], "configure") == [True]
    assert am.visible_spaces_many(u1, ["w1", "w2"]) == {"w1": "all", "w2": "all"}
    assert am.who_can(
        [u1, u2, u3, user("g1", uid="off", active=False)], "w1", "create_sources"
    ) == ("u1", "u3")
    what = am.what_can(u1, "w1")
    assert "create_sources on workspace" in what.grants and what.roles == ("editor",)
    assert am.what_can(u2, "w2").legacy_role == "legacy_sync_editor"
    conflicts = am.legacy_conflicts([u1, u2, u3])
    assert [(c.user_id, c.chosen, c.shadowed) for c in conflicts] == [
        ("u3", "legacy_sync_editor", ("legacy_workspace_viewer",))
    ]
    assert dict(conflicts[0].groups_by_role) == {
        "legacy_sync_editor": ("g2",),
        "legacy_workspace_viewer": ("g1",),
    }


def test_explain_allow_and_deny_are_structured_and_deterministic() -> None:
    cfg = OrgConfig(
        workspaces=(Workspace("w1"),),
        role_bindings=(RoleBinding("g1", "w1", "editor", "rule-eng"),),
    )
    am = AccessModel(cfg)
    ex = am.explain(user("g1"), "w1", "configure_syncs", dst("D"))
    assert ex.allowed and ex.matched[0].group_id == "g1"
    assert ex.matched[0].provenance == (("editor", "rule-eng"),)
    assert ex.bindings[0].source == "rule-eng"
    deny = am.explain(user("g1"), "w1", "manage_destination", dst("D"))
    assert not deny.allowed and deny.missing == ("manage_destination on destination:D",)
    assert AccessModel(cfg).explain(user("g1"), "w1", "manage_destination", dst("D")) == deny
    assert (
        deny.to_dict()
        == AccessModel(cfg).explain(user("g1"), "w1", "manage_destination", dst("D")).to_dict()
    )
    for name in (*ex.rules, *deny.rules):
        assert name in RULES
