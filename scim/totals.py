"""Layer: pure. totalResults remembered per organization revision (no I/O).

A list page's totalResults is a COUNT over every match: linear in what matches
(1.3 ms over 10k users here, ~13 ms over 100k), and the same for every page of a
listing while nothing changes. An IdP importing a directory by `startIndex` pays it on
each of its pages.

Every write to an organization's users, groups or memberships bumps
`organizations.revision` in the write's own transaction (`record_change`, the outbox
every worker task relies on). So a total counted in a snapshot that saw revision R is
exact for any later snapshot that still sees R. A page statement reads the revision
alongside its rows (one statement, one snapshot); when it equals the remembered one,
the remembered total is the page's total, and no COUNT runs.

Entries are keyed by (organization, page shape): resource type, filter, sort, and
whatever else `scim.listing.general_page` keys a statement by. At most `max_entries`
are kept, least recently used first out.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable

from cachetools import LRUCache


class Totals:
    """(organization, shape) -> (revision, total), an LRU of `max_entries`."""

    def __init__(self, max_entries: int = 1024) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.max_entries = max_entries
        self._entries: LRUCache[tuple[str, Hashable], tuple[int, int]] = LRUCache(max_entries)
        self._lock = threading.Lock()

    def known(self, org_id: str, shape: Hashable) -> bool:
        """Whether a total is remembered for this shape (at some revision)."""
        with self._lock:
            return (org_id, shape) in self._entries

    def get(self, org_id: str, shape: Hashable, revision: int) -> int | None:
        """The total counted at `revision`, or None (never counted, or counted at
        another revision: something was written since)."""
        key = (org_id, shape)
        with self._lock:
            found = self._entries.get(key)  # a hit counts as a use
            if found is None or found[0] != revision:
                return None
            return found[1]

    def put(self, org_id: str, shape: Hashable, revision: int, total: int) -> None:
        """Remember that `shape` matched `total` rows in a snapshot at `revision`."""
        key = (org_id, shape)
        with self._lock:
            self._entries[key] = (revision, total)  # the least recently used goes when full
