"""Layer: worker. Directory events from one committed change row (no I/O): which events a
SCIM write produces, and what they carry (docs/events.md, Event types).

A change row says what happened (``kind``), to which resource, and which users it touched;
``revoked_user_ids`` tells membership removals from additions (rows written before
migration 0007 lack it: ``members_now`` answers instead). The resources' attributes come
from ``users`` / ``groups``, read at derivation time (absent: deleted since).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

USER_CREATED: Final = "user.created"
USER_UPDATED: Final = "user.updated"
USER_DEACTIVATED: Final = "user.deactivated"
USER_DELETED: Final = "user.deleted"
GROUP_CREATED: Final = "group.created"
GROUP_UPDATED: Final = "group.updated"
GROUP_RENAMED: Final = "group.renamed"
GROUP_DELETED: Final = "group.deleted"
MEMBERSHIP_ADDED: Final = "group.membership.added"
MEMBERSHIP_REMOVED: Final = "group.membership.removed"
PERMISSIONS_CHANGED: Final = "permissions.changed"

EVENT_TYPES: Final = (
    USER_CREATED,
    USER_UPDATED,
    USER_DEACTIVATED,
    USER_DELETED,
    GROUP_CREATED,
    GROUP_UPDATED,
    GROUP_RENAMED,
    GROUP_DELETED,
    MEMBERSHIP_ADDED,
    MEMBERSHIP_REMOVED,
    PERMISSIONS_CHANGED,
)

_USER_KINDS: Final = {
    "user.created": USER_CREATED,
    "user.replaced": USER_UPDATED,
    "user.patched": USER_UPDATED,
    "user.reactivated": USER_UPDATED,
    "user.deactivated": USER_DEACTIVATED,
    "user.deleted": USER_DELETED,
}


@dataclass(frozen=True, slots=True)
class ChangeFacts:
    """What derivation needs of one change row."""

    revision: int
    kind: str
    resource_id: str | None
    user_ids: Sequence[str]
    group_ids: Sequence[str]
    revoked_user_ids: Sequence[str] | None
    actor: str
    request_id: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class EventDraft:
    """An event before it has its place (``seq``) and id in the log."""

    type: str
    revision: int
    occurred_at: datetime
    data: dict[str, Any]


def _user(users: Mapping[str, dict[str, Any]], user_id: str) -> dict[str, Any]:
    return users.get(user_id) or {"id": user_id}


def _group(groups: Mapping[str, dict[str, Any]], group_id: str) -> dict[str, Any]:
    return groups.get(group_id) or {"id": group_id}


def _split_members(
    change: ChangeFacts, members_now: Callable[[str], frozenset[str]]
) -> tuple[list[str], list[str]]:
    """(added, removed) user ids of a group change."""
    if change.revoked_user_ids is not None:
        removed = set(change.revoked_user_ids)
    else:  # a row from before migration 0007: today's membership decides
        current = members_now(change.resource_id or "")
        removed = {u for u in change.user_ids if u not in current}
    added = sorted(u for u in change.user_ids if u not in removed)
    return added, sorted(removed)


def directory_events(
    change: ChangeFacts,
    users: Mapping[str, dict[str, Any]],
    groups: Mapping[str, dict[str, Any]],
    members_now: Callable[[str], frozenset[str]],
) -> list[EventDraft]:
    """The directory events of one change row, in the order a consumer should apply them."""
    common = {"actor": change.actor, "request_id": change.request_id}

    def draft(kind: str, data: dict[str, Any]) -> EventDraft:
        return EventDraft(kind, change.revision, change.created_at, {**data, **common})

    kind = _USER_KINDS.get(change.kind)
    if kind is not None and change.resource_id is not None:
        out = [draft(kind, {"user": _user(users, change.resource_id)})]
        if kind == USER_DELETED:  # a deletion also ends the user's memberships
            out += [
                draft(
                    MEMBERSHIP_REMOVED,
                    {"group": _group(groups, g), "user_ids": [change.resource_id]},
                )
                for g in change.group_ids
            ]
        return out
    if not change.kind.startswith("group.") or change.resource_id is None:
        return []  # configuration changes: only their effect on permissions is an event
    group = _group(groups, change.resource_id)
    added, removed = _split_members(change, members_now)
    out = []
    if change.kind == "group.created":
        out.append(draft(GROUP_CREATED, {"group": group}))
    elif change.kind == "group.renamed":
        out.append(draft(GROUP_RENAMED, {"group": group}))
    elif change.kind == "group.deleted":
        return [draft(GROUP_DELETED, {"group": group, "removed_user_ids": removed})]
    elif change.kind == "group.replaced" and not added and not removed:
        out.append(draft(GROUP_UPDATED, {"group": group}))
    if added:
        out.append(draft(MEMBERSHIP_ADDED, {"group": group, "user_ids": added}))
    if removed:
        out.append(draft(MEMBERSHIP_REMOVED, {"group": group, "user_ids": removed}))
    return out
