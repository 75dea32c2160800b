"""Builds small organizations through the real write paths (SCIM store functions and
the config store), so every write records its change row like production does."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from models.cache.connection import CacheRedis
from models.cache.writer import CacheWriter
from models.db.config_store import (
    RuleSpec,
    WorkspaceSpec,
    WriteContext,
    create_role_binding,
    create_workspace,
    delete_binding,
)
from models.db.database import Database
from models.db.tokens import get_or_create_org
from scim.context import ScimContext
from scim.groups import create_group, patch_group
from scim.users import create_user, patch_user
from worker.rebuild import rebuild

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

DS_RULE = RuleSpec(
    id="ds",
    attribute="displayName",
    match="regex",
    pattern=r"^ds-(?P<workspace>[a-z0-9-]+)-(?P<role>admin|editor|viewer)$",
)
"""A mapping rule: a group named ``ds-<workspace>-<role>`` holds the role there."""


@dataclass
class World:
    db: Database
    org_id: str
    users: dict[str, str] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, db: Database, name: str | None = None) -> World:
        with db.write() as s:
            org = get_or_create_org(s, name or f"org-{uuid.uuid4().hex[:8]}")
            org_id = org.id
        return cls(db, org_id)

    @classmethod
    def alice_edits(cls, db: Database, cache: CacheRedis) -> World:
        """alice, in group eng, editor in workspace ws1; the cache built."""
        world = cls.create(db)
        world.workspace("ws1")
        world.team("eng", ["alice"], "ws1", "editor")
        world.cached(cache)
        return world

    @property
    def scim(self) -> ScimContext:
        return ScimContext(self.org_id, "test", "http://test/scim/v2")

    @property
    def admin(self) -> WriteContext:
        return WriteContext(self.org_id, "test-admin")

    def user(self, name: str) -> str:
        with self.db.write() as s:
            u = create_user(s, self.scim, {"schemas": [USER_SCHEMA], "userName": name})
            self.users[name] = u.id
        return self.users[name]

    def group(self, name: str, members: list[str] = ()) -> str:  # type: ignore[assignment]
        body: dict[str, Any] = {"schemas": [GROUP_SCHEMA], "displayName": name}
        if members:
            body["members"] = [{"value": self.users[m]} for m in members]
        with self.db.write() as s:
            g = create_group(s, self.scim, body)
            self.groups[name] = g.id
        return self.groups[name]

    def workspace(self, ws_id: str, **kw: Any) -> None:
        with self.db.write() as s:
            create_workspace(s, self.admin, WorkspaceSpec(id=ws_id, **kw))

    def bind(self, group: str, ws_id: str, role: str) -> str:
        with self.db.write() as s:
            row = create_role_binding(s, self.admin, self.groups[group], ws_id, role)
            return row.id

    def team(self, group: str, members: Sequence[str], ws_id: str, role: str) -> str:
        """The users ``members`` (those not created yet, in order), the group of them and
        its binding to ``role`` in ``ws_id``; the group's id."""
        for name in members:
            if name not in self.users:
                self.user(name)
        self.group(group, list(members))
        self.bind(group, ws_id, role)
        return self.groups[group]

    def cached(self, cache: CacheRedis) -> CacheWriter:
        """Build the organization's cache from SQL (a full rebuild); its writer."""
        writer = CacheWriter(cache, self.org_id)
        rebuild(self.db, writer, self.org_id)
        return writer

    def unbind(self, binding_id: str) -> None:
        with self.db.write() as s:
            delete_binding(s, self.admin, "role_binding", binding_id)

    def _patch_group(self, group: str, ops: list[dict[str, Any]]) -> None:
        with self.db.write() as s:
            patch_group(
                s,
                self.scim,
                self.groups[group],
                {"schemas": [PATCH_SCHEMA], "Operations": ops},
                None,
            )

    def rename(self, group: str, display_name: str) -> None:
        self._patch_group(group, [{"op": "replace", "path": "displayName", "value": display_name}])

    def add_member(self, group: str, user: str) -> None:
        self._patch_group(
            group, [{"op": "add", "path": "members", "value": [{"value": self.users[user]}]}]
        )

    def remove_member(self, group: str, user: str) -> None:
        uid = self.users[user]
        self._patch_group(group, [{"op": "remove", "path": f'members[value eq "{uid}"]'}])

    def set_active(self, user: str, active: bool) -> None:
        with self.db.write() as s:
            patch_user(
                s,
                self.scim,
                self.users[user],
                {
                    "schemas": [PATCH_SCHEMA],
                    "Operations": [{"op": "replace", "path": "active", "value": active}],
                },
                None,
            )

    def revision(self) -> int:
        from models.cache.fallback import org_revision

        with self.db.read() as s:
            return org_revision(s, self.org_id)
