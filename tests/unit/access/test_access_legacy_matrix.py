"""Contract §3: every cell of the legacy role matrix, the approve rule, precedence."""

from __future__ import annotations

import pytest

from models.access import AccessModel, OrgConfig, ResourceRef, RoleBinding, Workspace
from tests.unit.access.builders import one_role, user

MATRIX = """
legacy_admin              | Full | Full  | Full | Full    | Full | Full
legacy_workspace_editor   | Full | Full  | Full | Full    | Full | none
legacy_model_sync_editor  | Read | Full  | Read | Full    | Full | none
legacy_sync_editor        | Read | Read  | Read | Full    | Full | none
legacy_audience_editor    | Read | Read  | Read | Limited | Full | none
legacy_source_admin       | Full | Full  | Read | Read    | Read | none
legacy_destination_admin  | Read | Read  | Full | Read    | Read | Full
legacy_workspace_viewer   | Read | Read  | Read | Read    | Read | none
legacy_draft_contributor  | Full | Full* | Full | Full*   | Full | none
"""
TYPES = ("source", "model", "destination", "sync", "audience", "account")
ACTIONS = {
    "source": ("create", "read", "update", "delete", "preview"),
    "model": ("create", "read", "update", "delete", "preview", "approve", "publish"),
    "destination": ("create", "read", "update", "delete"),
    "sync": (
        "create", "read", "update", "delete", "start", "enable", "debugger", "testrow",
        "approve", "publish",
    ),
    "audience": ("create", "read", "update", "delete"),
    "account": ("create", "read", "update", "delete"),
}  # fmt: skip
NO_APPROVE = {"legacy_draft_contributor", "legacy_workspace_viewer"}


def expected(role: str, rtype: str, level: str, action: str) -> bool:
    if action == "approve" and rtype in ("model", "sync"):
        # approve on models and syncs: every role except draft contributor and viewer
        return role not in NO_APPROVE
    if level == "Full":
        return True
    if level == "Full*":
        return action not in ("approve", "publish")
    if level == "Limited":
        return action not in ("enable", "start")
    if level == "Read":
        return action in ("read", "preview", "debugger")
    return False


def cells() -> list[tuple[str, str, str, str, bool]]:
    out = []
    for line in MATRIX.strip().splitlines():
        role, *levels = (c.strip() for c in line.split("|"))
        for rtype, level in zip(TYPES, levels, strict=True):
            for action in ACTIONS[rtype]:
                out.append((role, rtype, level, action, expected(role, rtype, level, action)))
    return out


@pytest.mark.parametrize(("role", "rtype", "level", "action", "allowed"), cells())
def test_legacy_matrix_cell(role: str, rtype: str, level: str, action: str, allowed: bool) -> None:
    am = one_role(role, model="legacy")
    assert am.check(user("g1"), "w1", action, ResourceRef(rtype, "r1")) is allowed


PRECEDENCE = [
    "legacy_admin",
    "legacy_workspace_editor",
    "legacy_draft_contributor",
    "legacy_model_sync_editor",
    "legacy_source_admin",
    "legacy_destination_admin",
    "legacy_sync_editor",
    "legacy_audience_editor",
    "legacy_workspace_viewer",
]


@pytest.mark.parametrize("i", range(len(PRECEDENCE)))
@pytest.mark.parametrize("j", range(len(PRECEDENCE)))
def test_one_role_per_user_highest_wins(i: int, j: int) -> None:
    cfg = OrgConfig(
        workspaces=(Workspace("w1", permissions_model="legacy"),),
        role_bindings=(
            RoleBinding("ga", "w1", PRECEDENCE[i]),
            RoleBinding("gb", "w1", PRECEDENCE[j]),
        ),
    )
    am = AccessModel(cfg)
    u = user("ga", "gb")
    access = am.workspace_access(u, "w1")
    assert access is not None
    assert access.legacy_role == PRECEDENCE[min(i, j)]
    assert access.legacy_shadowed == (() if i == j else (PRECEDENCE[max(i, j)],))
    ex = am.explain(u, "w1", "read", ResourceRef("source", "s"))
    assert ex.legacy_role == PRECEDENCE[min(i, j)]
    if i != j:
        assert "legacy.one_role_per_user" in ex.rules
        assert ex.shadowed_roles == (PRECEDENCE[max(i, j)],)


def test_one_role_per_user_is_not_a_union() -> None:
    # Destination admin has account Full, source admin has source Full: a user holding
    # both gets only source admin (higher) — account is not unioned in.
    cfg = OrgConfig(
        workspaces=(Workspace("w1", permissions_model="legacy"),),
        role_bindings=(
            RoleBinding("ga", "w1", "legacy_source_admin"),
            RoleBinding("gb", "w1", "legacy_destination_admin"),
        ),
    )
    am = AccessModel(cfg)
    u = user("ga", "gb")
    assert am.check(u, "w1", "update", ResourceRef("source", "s")) is True
    assert am.check(u, "w1", "update", ResourceRef("account", "a")) is False
    assert am.check(u, "w1", "update", ResourceRef("destination", "d")) is False


def test_legacy_sync_needs_read_on_what_it_uses() -> None:
    am = one_role("legacy_sync_editor", model="legacy")
    assert am.check_sync(user("g1"), "w1", "s", "d", "create", model="m") is True
    # a custom role with sync rights but no read on sources cannot create syncs
    from models.access import parse_legacy_role

    role = parse_legacy_role(
        "c1", "sync only", {"statements": [{"actions": "*", "resource": "sync"}]}
    )
    am2 = one_role("c1", model="legacy", roles=(role,))
    assert am2.check(user("g1"), "w1", "create", ResourceRef("sync", "y")) is True
    assert am2.check_sync(user("g1"), "w1", "s", "d", "create") is False
    ex = am2.explain_sync(user("g1"), "w1", am2.sync_ref("w1", "s", "d"), "create")
    assert "legacy.use_needs_read" in ex.rules and ex.missing
