"""Layer: worker. A user's effective permissions as event items, and the diff that a
``permissions.changed`` event carries (no I/O).

The items are what ``GET /api/v1/users/{id}/permissions`` shows, from the same reference
evaluator (``AccessModel.what_can``), per workspace and per part: ``roles``, ``admin``,
``grants`` (v2: ``"<grant> on <scope>"``), ``legacy_actions``, ``spaces`` (``"*"``: every
Space). A part with nothing is left out, and so is a workspace where the user has nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from models.access.access_model import AccessModel, WhatCan
from models.access.inputs import OrgConfig, User

PARTS: Final = ("roles", "admin", "grants", "legacy_actions", "spaces")

Items = dict[str, list[str]]
"""part -> sorted items (only non-empty parts)."""
Permissions = dict[str, Items]
"""workspace id -> items (only workspaces where the user has something)."""


def _items(what: WhatCan) -> Items:
    spaces = what.visible_spaces
    parts: dict[str, Iterable[str]] = {
        "roles": what.roles,
        "admin": ["admin"] if what.is_admin else [],
        "grants": what.grants,
        "legacy_actions": what.legacy_actions,
        "spaces": (["*"] if isinstance(spaces, str) else spaces) if what.roles else [],
    }
    return {part: sorted(set(values)) for part, values in parts.items() if values}


class PermissionReader:
    """Effective permissions of users under one organization configuration."""

    def __init__(self, config: OrgConfig) -> None:
        self.config = config
        self.model = AccessModel(config)

    def of(self, user: User | None) -> Permissions:
        if user is None or not user.can_act:
            return {}
        out: Permissions = {}
        for ws in self.config.workspaces:
            items = _items(self.model.what_can(user, ws.id))
            if items:
                out[ws.id] = items
        return out


def diff(before: Mapping[str, Any], after: Permissions) -> list[tuple[str, Items, Items]]:
    """``[(workspace, granted, revoked)]`` for every workspace where something changed."""
    out: list[tuple[str, Items, Items]] = []
    for ws in sorted(set(before) | set(after)):
        old: Mapping[str, list[str]] = before.get(ws) or {}
        new: Mapping[str, list[str]] = after.get(ws) or {}
        granted: Items = {}
        revoked: Items = {}
        for part in PARTS:
            was, now = set(old.get(part, ())), set(new.get(part, ()))
            if now - was:
                granted[part] = sorted(now - was)
            if was - now:
                revoked[part] = sorted(was - now)
        if granted or revoked:
            out.append((ws, granted, revoked))
    return out
