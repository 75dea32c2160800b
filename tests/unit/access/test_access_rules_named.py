"""Every named decision rule shows up in explain (or mapping) output for some scenario."""

from __future__ import annotations

from models.access import (
    RULES,
    AccessModel,
    Explanation,
    MappingRule,
    OrgAdminBinding,
    OrgConfig,
    ResourceRef,
    RoleBinding,
    ScimGroup,
    Space,
    SpaceAssignment,
    SyncRef,
    Workspace,
    apply_mapping_rules,
)
from tests.unit.access.builders import dst, one_role, pm, src, user
from tests.unit.access.test_access_decisions import (
    _label_model,
    _subset_model,
    _two_groups,
)


def test_every_rule_is_shown_somewhere() -> None:
    seen: set[str] = set()

    def add(ex: Explanation) -> None:
        seen.update(ex.rules)

    u = user("g1")
    add(one_role("admin").explain(None, "w1", "read"))
    add(one_role("admin").explain(user("zz"), "w1", "read"))
    add(one_role("admin").explain(u, "w1", "start", ResourceRef("sync", "y")))
    add(one_role("admin", approvals=True).explain(u, "w1", "configure_syncs", dst()))
    add(one_role("editor").explain(u, "w1", "configure_syncs", dst()))
    add(one_role("viewer").explain(u, "w1", "read"))
    add(_two_groups().explain_sync(user("g1", "g2"), "w1", SyncRef.of("A", "D"), "configure"))
    am = _two_groups()
    add(
        AccessModel(am.config).explain_sync(
            user("g1"), "w1", SyncRef.of(ResourceRef.audience("P", None), "D"), "trigger"
        )
    )
    add(
        _subset_model({"region": ["EU"]}).explain(
            u, "w1", "view_parent_model_data", ResourceRef.audience("P", None, {"tier": ["x"]})
        )
    )
    add(
        _subset_model({"consent": ["yes"]}).explain(
            u, "w1", "view_parent_model_data", ResourceRef.audience("P", None, {"region": ["EU"]})
        )
    )
    add(
        _subset_model({"region": ["EU"]}).explain(
            u, "w1", "view_parent_model_data", ResourceRef.audience("P", None, {"region": ["US"]})
        )
    )
    add(_label_model().explain(u, "w1", "start", ResourceRef("sync", "y")))
    for role, action, rtype in (
        ("legacy_draft_contributor", "update", "sync"),
        ("legacy_audience_editor", "start", "sync"),
        ("legacy_sync_editor", "approve", "model"),
        ("legacy_workspace_viewer", "preview", "source"),
        ("legacy_admin", "read", "source"),
    ):
        add(one_role(role, model="legacy").explain(u, "w1", action, ResourceRef(rtype, "r")))
    add(
        one_role("legacy_sync_editor", model="legacy").explain_sync(
            u, "w1", SyncRef.of("s", "d"), "start"
        )
    )
    legacy_conflict = OrgConfig(
        workspaces=(Workspace("w1", permissions_model="legacy"),),
        roles=_label_model().config.roles,
        role_bindings=(
            RoleBinding("g1", "w1", "prod-syncs"),
            RoleBinding("g2", "w1", "legacy_workspace_viewer"),
        ),
    )
    add(AccessModel(legacy_conflict).explain(user("g1", "g2"), "w1", "read", src()))
    spaces = OrgConfig(
        workspaces=(
            Workspace("w1", spaces_enabled=True),
            Workspace("dev", parent_workspace_id="w1"),
        ),
        spaces=(Space("s1", "w1"),),
        org_admins=(OrgAdminBinding("ga"),),
        role_bindings=(RoleBinding("g1", "w1", "viewer"), RoleBinding("g1", "w1", "legacy_admin")),
        space_assignments=(SpaceAssignment("g1", "w1", "s1"), SpaceAssignment("g9", "w1", "s1")),
    )
    sam = AccessModel(spaces)
    add(
        sam.explain(
            user("g1", "g9"), "dev", "configure_audiences_syncs", ResourceRef.audience("P", None)
        )
    )
    add(sam.explain(user("ga"), "w1", "configure_audiences_syncs", ResourceRef.audience("P", "s1")))
    add(sam.explain(user("g1"), "w1", "view_data", src()))
    add(sam.explain(user("g1"), "w1", "configure_audiences_syncs", pm()))
    mapping = apply_mapping_rules(
        [MappingRule("r", "displayName", "regex", r"x-(?P<workspace>\w+)-(?P<role>\w+)")],
        [ScimGroup("a", "x-w2-admin"), ScimGroup("b", "x-w9-admin")],
        OrgConfig(workspaces=(Workspace("w2", permissions_model="legacy"),)),
    )
    seen.update(mapping.rules)
    seen.update(_two_groups().check_model_edit(user("g1"), "w1", "A", []).rules)
    assert set(RULES) - seen == set()
    assert seen <= set(RULES)


def test_subset_denies_name_the_rule_that_applies() -> None:
    u = user("g1")
    other_value = _subset_model({"region": ["EU"]}).explain(
        u, "w1", "view_parent_model_data", ResourceRef.audience("P", None, {"region": ["US"]})
    )
    assert not other_value.allowed
    assert "subsets.only_chosen_values" in other_value.rules
    assert "subsets.required_without_value_denies" not in other_value.rules
    no_value = _subset_model({"consent": ["yes"]}).explain(
        u, "w1", "view_parent_model_data", ResourceRef.audience("P", None, {"region": ["EU"]})
    )
    assert not no_value.allowed
    assert "subsets.required_without_value_denies" in no_value.rules
