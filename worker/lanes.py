"""Layer: worker. Which dirty lanes a committed change feeds (shared by the after-commit hook
and the outbox catch-up, so both paths classify identically)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from models.cache.layout import LANE_CONFIG, LANE_GRANT, LANE_REVOKE

PRIORITY: Final = "p"
"""Wake / lease name of the priority drain (config + revoke lanes)."""
BULK: Final = "b"
"""Wake / lease name of the bulk drain (grant lane)."""

PRIORITY_LANES: Final = (LANE_CONFIG, LANE_REVOKE)
BULK_LANES: Final = (LANE_GRANT,)
ALL_LANES: Final = (*PRIORITY_LANES, *BULK_LANES)

WAKE_OF: Final = {LANE_CONFIG: PRIORITY, LANE_REVOKE: PRIORITY, LANE_GRANT: BULK}

# Users of these changes may lose permissions: the revoke lane (never behind grants).
REVOKE_KINDS: Final = frozenset(
    {
        "user.deactivated",
        "user.deleted",
        "group.deleted",
        "group.members_changed",  # adds and removals are not told apart: revoke wins
        "group.replaced",
    }
)
GRANT_KINDS: Final = frozenset(
    {
        "user.created",
        "user.reactivated",
        "user.replaced",
        "user.patched",
        "group.created",
    }
)
TOMBSTONE_KINDS: Final = frozenset({"user.deactivated", "user.deleted"})
"""Written straight to the cache by the hook (no SQL needed to know the answer)."""
RULE_KINDS: Final = frozenset({"group.created", "group.renamed", "group.replaced"})
"""Group names / externalIds that mapping rules may match: re-apply rules to them. They
always wake the priority drain, whose outbox catch-up re-applies the rules (a rename
carries no user, so no lane would wake anything otherwise)."""
LABEL_KINDS: Final = frozenset(
    {
        "config.resource.updated",
        "config.resource.deleted",
        "config.workspace.created",
        "config.workspace.deleted",
    }
)
"""Registered resources or workspaces changed: the catch-up rewrites the cache's labels
hash and workspace set (``worker.labels``). They always wake the priority drain, even
with no group affected."""


def lanes_for(
    kind: str, user_ids: Sequence[str], group_ids: Sequence[str]
) -> list[tuple[str, tuple[str, ...]]]:
    """``[(lane, members)]`` for one change row."""
    out: list[tuple[str, tuple[str, ...]]] = []
    if kind.startswith("config."):
        if group_ids or kind in LABEL_KINDS:
            out.append((LANE_CONFIG, tuple(group_ids)))
        return out
    if user_ids:
        if kind in REVOKE_KINDS:
            out.append((LANE_REVOKE, tuple(user_ids)))
        elif kind in GRANT_KINDS or kind == "group.renamed":
            out.append((LANE_GRANT, tuple(user_ids)))
        else:  # an unknown kind: recompute, conservatively on the revoke lane
            out.append((LANE_REVOKE, tuple(user_ids)))
    if kind in RULE_KINDS and group_ids and not any(WAKE_OF[lane] == PRIORITY for lane, _ in out):
        out.append((LANE_CONFIG, ()))  # no member: only wakes the priority drain's catch-up
    return out
