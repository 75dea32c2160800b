"""Small builders for access-model tests."""

from __future__ import annotations

from collections.abc import Iterable

from models.access import (
    AccessModel,
    LegacyRole,
    OrgConfig,
    ResourceRef,
    RoleBinding,
    Space,
    SpaceAssignment,
    User,
    V2Role,
    Workspace,
)


def user(*groups: str, uid: str = "u1", active: bool = True, deleted: bool = False) -> User:
    return User(uid, active=active, deleted=deleted, group_ids=frozenset(groups))


def one_role(
    role_id: str,
    *,
    model: str = "v2",
    approvals: bool = False,
    spaces: bool = False,
    extra: Iterable[RoleBinding] = (),
    roles: tuple[V2Role | LegacyRole, ...] = (),
) -> AccessModel:
    ws = Workspace(
        "w1",
        permissions_model=model,  # type: ignore[arg-type]
        approvals_required=approvals,
        spaces_enabled=spaces,
    )
    return AccessModel(
        OrgConfig(
            workspaces=(ws,),
            roles=roles,
            role_bindings=(RoleBinding("g1", "w1", role_id), *extra),
        )
    )


def src(i: str = "S1") -> ResourceRef:
    return ResourceRef("source", i)


def dst(i: str = "D1") -> ResourceRef:
    return ResourceRef("destination", i)


def pm(i: str = "P1") -> ResourceRef:
    return ResourceRef("parent_model", i)


def spaces_config(**kw: object) -> OrgConfig:
    return OrgConfig(
        workspaces=(Workspace("w1", spaces_enabled=True),),
        spaces=(Space("s1", "w1"), Space("s2", "w1"), Space("s3", "w1")),
        **kw,  # type: ignore[arg-type]
    )


__all__ = ["SpaceAssignment", "dst", "one_role", "pm", "spaces_config", "src", "user"]
