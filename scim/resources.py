"""Layer: store. How each SCIM resource type is stored and rendered (Users, Groups), and what a
request presents (`scim.routes` runs them)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from scim import groups as group_store
from scim import users as user_store
from scim.context import ScimContext
from scim.discovery import Limits
from scim.listing import ExtraColumn
from scim.render import Stored, render_group, render_user
from scim.schemas import GROUP_RESOURCE, USER_RESOURCE, ResourceType

Row = Any  # User | Group | StoredRow


@dataclass(frozen=True)
class Caller:
    """What a request presents: its bearer token (not yet verified) and where it came."""

    token: str
    base_url: str
    request_id: str | None

    def context(self, org_id: str, token_id: str) -> ScimContext:
        return ScimContext(
            org_id=org_id,
            actor=f"scim-token:{token_id}",
            base_url=self.base_url,
            request_id=self.request_id,
        )


@dataclass(frozen=True)
class ScimConfig:
    limits: Limits
    default_count: int
    public_base_url: str | None = None
    token_cache_s: float = 0.0  # how long a verified token is remembered (0: never)


@dataclass(frozen=True)
class ResourceOps:
    """How one resource type is stored and rendered."""

    resource: ResourceType
    multi_attr: str  # the potentially large computed/joined attribute
    create: Callable[[Session, ScimContext, dict[str, Any]], Row]
    replace: Callable[[Session, ScimContext, str, dict[str, Any], str | None], Row]
    patch: Callable[[Session, ScimContext, str, dict[str, Any], str | None], Row]
    delete: Callable[[Session, ScimContext, str, str | None], None]
    # Reads a group's members on `Connection` when they are wanted (Users carry their
    # groups in the read's own statement: `page_extra`).
    render: Callable[
        [Connection, Sequence[Row], str, bool, Sequence[Any] | None], list[dict[str, Any]]
    ]
    # A correlated scalar subquery (built per dialect and id column) that a page
    # statement carries, and `render` takes as `preloaded` instead of running a query of
    # its own (Users: `groups`). None: `multi_attr` is read by a query of its own.
    page_extra: ExtraColumn | None = None
    # `create` as exactly one Core statement on a `Database.write_one` Connection (a User
    # create: POST runs this instead of `create`, which bulk and IdP pulls run in a
    # Session). None: POST runs `create`.
    create_one_statement: Callable[[Connection, ScimContext, dict[str, Any]], Row] | None = None


def _user_rows(
    rows: Sequence[Stored], base: str, preloaded: Sequence[Any] | None
) -> list[dict[str, Any]]:
    if preloaded is None:
        return [render_user(u, base, None) for u in rows]
    return [
        render_user(u, base, user_store.groups_from_column(g))
        for u, g in zip(rows, preloaded, strict=True)
    ]


def _render_users(
    _conn: Connection,
    rows: Sequence[Stored],
    base: str,
    with_groups: bool,
    preloaded: Sequence[Any] | None = None,
) -> list[dict[str, Any]]:
    """`preloaded`: `groups_column` values from the read's own statement, one per row.
    Every read of Users carries them (`page_extra`) when `groups` are wanted."""
    if with_groups and preloaded is None:
        raise ValueError("a read of Users that wants groups carries them (page_extra)")
    return _user_rows(rows, base, preloaded if with_groups else None)


def _group_rows(
    rows: Sequence[Stored], base: str, _preloaded: Sequence[Any] | None
) -> list[dict[str, Any]]:
    return [render_group(g, base, None) for g in rows]


def _render_groups(
    conn: Connection,
    rows: Sequence[Stored],
    base: str,
    with_members: bool,
    _preloaded: Sequence[Any] | None = None,
) -> list[dict[str, Any]]:
    if not with_members:
        return _group_rows(rows, base, None)
    members = group_store.members_of_many(conn, [g.id for g in rows])
    return [render_group(g, base, members[g.id]) for g in rows]


USERS = ResourceOps(
    resource=USER_RESOURCE,
    multi_attr="groups",
    create=user_store.create_user,
    replace=user_store.replace_user,
    patch=user_store.patch_user,
    delete=user_store.delete_user,
    render=_render_users,
    page_extra=user_store.groups_column,
    create_one_statement=user_store.create_user,
)
GROUPS = ResourceOps(
    resource=GROUP_RESOURCE,
    multi_attr="members",
    create=group_store.create_group,
    replace=group_store.replace_group,
    patch=group_store.patch_group,
    delete=group_store.delete_group,
    render=_render_groups,
)
