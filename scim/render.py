"""Stored rows → SCIM JSON (before `attributes`/`excludedAttributes` projection)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from models.db.tables import Group, User
from scim.schemas import CORE_GROUP, CORE_USER, ENTERPRISE_USER


def etag(version: int) -> str:
    return f'W/"{version}"'


def scim_time(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _meta(
    resource_type: str, location: str, created: datetime, modified: datetime, version: int
) -> dict[str, str]:
    return {
        "resourceType": resource_type,
        "created": scim_time(created),
        "lastModified": scim_time(modified),
        "location": location,
        "version": etag(version),
    }


def render_user(
    user: User,
    base_url: str,
    groups: Sequence[tuple[str, str]] | None,
) -> dict[str, Any]:
    """`groups`: (group id, displayName) pairs, or None when they were not loaded."""
    doc: dict[str, Any] = dict(user.attrs)
    schemas = [CORE_USER]
    ext = doc.get(ENTERPRISE_USER)
    if isinstance(ext, dict) and ext:
        schemas.append(ENTERPRISE_USER)
        manager = ext.get("manager")
        if isinstance(manager, dict) and manager.get("value"):
            ext = {**ext, "manager": {**manager, "$ref": f"{base_url}/Users/{manager['value']}"}}
            doc[ENTERPRISE_USER] = ext
    # `active` is in the document from POST/PUT (default true); only a PATCH that removes
    # it leaves it unassigned, and an unassigned attribute is not rendered (RFC 7644
    # §3.5.2.2, RFC 7643 §2.5) — the user still counts as active (`User.active`).
    out: dict[str, Any] = {"schemas": schemas, "id": user.id, **doc}
    if groups is not None and groups:
        out["groups"] = [
            {"value": gid, "$ref": f"{base_url}/Groups/{gid}", "display": name, "type": "direct"}
            for gid, name in groups
        ]
    out["meta"] = _meta(
        "User", f"{base_url}/Users/{user.id}", user.created_at, user.updated_at, user.version
    )
    return out


def render_group(
    group: Group,
    base_url: str,
    members: Sequence[tuple[str, str | None]] | None,
) -> dict[str, Any]:
    """`members`: (user id, display) pairs, or None when they were not loaded."""
    out: dict[str, Any] = {"schemas": [CORE_GROUP], "id": group.id, **group.attrs}
    if members:
        out["members"] = [
            {"value": uid, "$ref": f"{base_url}/Users/{uid}", "display": display, "type": "User"}
            if display
            else {"value": uid, "$ref": f"{base_url}/Users/{uid}", "type": "User"}
            for uid, display in members
        ]
    out["meta"] = _meta(
        "Group", f"{base_url}/Groups/{group.id}", group.created_at, group.updated_at, group.version
    )
    return out
