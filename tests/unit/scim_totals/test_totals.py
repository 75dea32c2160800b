"""scim.totals: a total holds exactly while the organization's revision is unchanged."""

from __future__ import annotations

import pytest

from scim.totals import Totals


def test_a_total_is_returned_only_at_the_revision_it_was_counted_at() -> None:
    totals = Totals()
    assert not totals.known("org", "shape")
    assert totals.get("org", "shape", 7) is None
    totals.put("org", "shape", 7, 120)
    assert totals.known("org", "shape")
    assert totals.get("org", "shape", 7) == 120
    assert totals.get("org", "shape", 8) is None  # written since
    assert totals.get("org", "other shape", 7) is None
    assert totals.get("other org", "shape", 7) is None
    totals.put("org", "shape", 8, 121)
    assert totals.get("org", "shape", 7) is None
    assert totals.get("org", "shape", 8) == 121


def test_least_recently_used_entries_go_first() -> None:
    totals = Totals(max_entries=2)
    totals.put("org", "a", 1, 10)
    totals.put("org", "b", 1, 20)
    assert totals.get("org", "a", 1) == 10  # a is now the most recently used
    totals.put("org", "c", 1, 30)
    assert not totals.known("org", "b")
    assert totals.get("org", "a", 1) == 10
    assert totals.get("org", "c", 1) == 30


def test_needs_room_for_one() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        Totals(max_entries=0)
