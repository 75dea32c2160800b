"""The compiled cache form: encoding, sharing, size, and answers from it."""

from __future__ import annotations

from models.access import (
    OrgAdminBinding,
    OrgConfig,
    ResourceRef,
    RoleBinding,
    Space,
    SpaceAssignment,
    SyncRef,
    User,
    Workspace,
    check_compiled,
    check_sync_compiled,
    compile_for_groups,
    decode_compiled,
    decode_workspace_map,
    encode_compiled,
    encode_workspace_map,
    group_set_key,
    visible_spaces_compiled,
)
from models.access.compiler import Compiler


def test_golden_encodings() -> None:
    cfg = OrgConfig(
        workspaces=(
            Workspace("w1", spaces_enabled=True),
            Workspace("w2", permissions_model="legacy"),
            Workspace("w3", approvals_required=True),
        ),
        spaces=(Space("s1", "w1"),),
        role_bindings=(
            RoleBinding("g1", "w1", "editor"),
            RoleBinding("g1", "w2", "legacy_sync_editor"),
            RoleBinding("g1", "w3", "admin"),
        ),
        space_assignments=(SpaceAssignment("g1", "w1", "s1"),),
    )
    c = compile_for_groups(frozenset({"g1"}), cfg)
    assert encode_compiled(c["w1"]) == '[1,"2",0,["s1"],["@editor"]]'
    assert encode_compiled(c["w2"]) == '[1,"L",4,null,[],"legacy_sync_editor"]'
    assert encode_compiled(c["w3"]) == '[1,"2",3]'
    for entry in c.values():
        assert decode_compiled(encode_compiled(entry)) == entry


def test_environment_shares_the_parent_entry_and_absent_means_no_access() -> None:
    cfg = OrgConfig(
        workspaces=(
            Workspace("w1"),
            Workspace("w1-dev", parent_workspace_id="w1"),
            Workspace("w2"),
        ),
        role_bindings=(RoleBinding("g1", "w1", "viewer"),),
    )
    c = compile_for_groups(frozenset({"g1"}), cfg)
    assert c["w1-dev"] is c["w1"]
    assert "w2" not in c
    assert check_compiled(c.get("w2"), "read") is False
    assert visible_spaces_compiled(c.get("w2")) == frozenset()
    blob = encode_workspace_map(c)
    assert blob == b'{"c":[[1,"2",0]],"w":{"w1":0,"w1-dev":0}}'
    assert decode_workspace_map(blob) == c


def test_org_admin_compiles_every_workspace() -> None:
    cfg = OrgConfig(
        workspaces=(Workspace("w1"), Workspace("w2", permissions_model="legacy")),
        org_admins=(OrgAdminBinding("ga"),),
    )
    c = compile_for_groups(frozenset({"ga", "other"}), cfg)
    assert c["w1"].admin and c["w2"].admin
    assert check_compiled(c["w2"], "delete", ResourceRef("account", "a"))


def test_per_group_pair_sets_answer_same_group_rule() -> None:
    from tests.unit.access.test_access_decisions import _two_groups

    am = _two_groups()
    c = am.compile_user(User("u", group_ids=frozenset({"g1", "g2"})))["w1"]
    assert c.pairs is not None and len(c.pairs) == 2
    assert check_sync_compiled(c, SyncRef.of("A", "B"), "configure")
    assert not check_sync_compiled(c, SyncRef.of("A", "D"), "configure")
    single = am.compile_user(User("u", group_ids=frozenset({"g1"})))["w1"]
    assert single.pairs is None  # one group: the union is the pair set


def test_typical_user_fits_in_one_kilobyte_at_20_workspaces() -> None:
    workspaces = tuple(
        Workspace(f"workspace-{i:02d}", spaces_enabled=i % 2 == 0, approvals_required=i % 3 == 0)
        for i in range(20)
    )
    spaces = tuple(
        Space(f"space-{i:02d}-{j}", w.id) for i, w in enumerate(workspaces) for j in range(3)
    )
    roles = ("editor", "viewer", "draft_editor", "viewer")
    bindings = tuple(RoleBinding("team", w.id, roles[i % 4]) for i, w in enumerate(workspaces))
    bindings += tuple(RoleBinding("all-staff", w.id, "viewer") for w in workspaces)
    assignments = tuple(
        SpaceAssignment("team", s.workspace_id, s.id) for s in spaces if s.id.endswith("-0")
    )
    cfg = OrgConfig(
        workspaces=workspaces, spaces=spaces, role_bindings=bindings, space_assignments=assignments
    )
    blob = encode_workspace_map(compile_for_groups(frozenset({"team", "all-staff"}), cfg))
    assert len(blob) <= 1024, len(blob)
    assert len(group_set_key({"team", "all-staff"})) == 16


def test_group_set_key_is_order_free_and_distinct() -> None:
    assert group_set_key(["a", "b"]) == group_set_key(("b", "a", "a"))
    assert group_set_key(["a", "b"]) != group_set_key(["ab"])
    assert group_set_key([]) == group_set_key(())


def test_compiler_memo_does_not_leak_between_group_sets() -> None:
    cfg = OrgConfig(
        workspaces=(Workspace("w1"),),
        role_bindings=(RoleBinding("g1", "w1", "viewer"), RoleBinding("g2", "w1", "editor")),
    )
    comp = Compiler(cfg)
    assert not check_compiled(comp.compile({"g1"})["w1"], "create_sources")
    assert check_compiled(comp.compile({"g1", "g2"})["w1"], "create_sources")
    assert not check_compiled(comp.compile({"g1"})["w1"], "create_sources")
