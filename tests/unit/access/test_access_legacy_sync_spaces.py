"""A legacy workspace with Spaces: a sync named in a visible Space is judged in that Space
on every side (the reference decision asked for a space_id again; found by the property
test comparing it with the compiled check)."""

from __future__ import annotations

from models.access.access_model import AccessModel
from models.access.compiled_checks import check_sync_compiled, check_sync_compiled_reason
from models.access.compiler import compile_for_groups
from models.access.inputs import (
    OrgConfig,
    RegisteredResource,
    ResourceRef,
    RoleBinding,
    Space,
    SpaceAssignment,
    User,
    Workspace,
)
from models.access.refs import SyncRef

CFG = OrgConfig(
    workspaces=(Workspace(id="w0", permissions_model="legacy", spaces_enabled=True),),
    spaces=(Space(id="s2", workspace_id="w0"),),
    role_bindings=(RoleBinding("g0", "w0", "legacy_workspace_editor", "manual"),),
    space_assignments=(SpaceAssignment("g0", "w0", "s2"),),
    resources=(
        RegisteredResource(
            workspace_id="w0", type="sync", id="A", labels=frozenset({("env", "prod")})
        ),
    ),
)


def test_legacy_sync_in_a_visible_space_is_granted_by_both_paths() -> None:
    user = User("u", active=True, group_ids=frozenset({"g0"}))
    compiled = compile_for_groups(frozenset({"g0"}), CFG)["w0"]
    src, dst = ResourceRef("source", "A"), ResourceRef("destination", "A")
    for space_id, allowed, reason in ((None, False, "space_id_required"), ("s2", True, "granted")):
        sync = SyncRef(source=src, destination=dst, space_id=space_id)
        decision = AccessModel(CFG).decide_sync(user, "w0", sync, "configure")
        assert (decision.allowed, decision.reason) == (allowed, reason)
        resolved = sync.with_registered_labels("w0", CFG)
        assert check_sync_compiled(compiled, resolved, "configure") is allowed
        assert check_sync_compiled_reason(compiled, resolved, "configure") == reason
