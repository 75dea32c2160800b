"""Layer: pure. Stored rows → SCIM JSON (before `attributes`/`excludedAttributes` projection)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from scim.schemas import CORE_GROUP, CORE_USER, ENTERPRISE_USER, LIST_RESPONSE


class Stored(Protocol):
    """What rendering reads of a stored User or Group: an ORM row or a `StoredRow`."""

    @property
    def id(self) -> str: ...
    @property
    def attrs(self) -> dict[str, Any]: ...
    @property
    def version(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...


class StoredRow(NamedTuple):
    """The columns a list page reads (`scim.listing.PAGE_COLUMNS`), without an ORM
    object: a page of 100 users costs a tuple each instead of an identity-mapped,
    instrumented instance."""

    id: str
    attrs: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime


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
    user: Stored,
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
    group: Stored,
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


def list_response(
    resources: list[dict[str, Any]], *, total: int | None = None, start_index: int = 1
) -> dict[str, Any]:
    """A ListResponse (RFC 7644 §3.4.2); `total` defaults to the resources given."""
    return {
        "schemas": [LIST_RESPONSE],
        "totalResults": len(resources) if total is None else total,
        "startIndex": start_index,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }
