"""Pure parts of the cache: key layout, encodings, lane classification."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.cache.layout import (
    LANE_CONFIG,
    LANE_GRANT,
    LANE_REVOKE,
    OrgKeys,
    decode_labels,
    decode_set,
    decode_user,
    encode_labels,
    encode_set,
    encode_user,
    label_field,
    label_field_workspace,
)
from worker.lanes import lanes_for

ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=36)


def test_every_key_carries_the_org_hash_tag() -> None:
    k = OrgKeys.of("org-1")
    keys = [
        k.meta,
        *k.generation_keys(3),
        k.stream,
        k.dirty("r"),
        k.dirty_hi("r"),
        k.wake("p"),
        k.lease("p"),
        k.ingest_lease,
        k.rebuild,
        k.rebuild_done,
        k.reconcile,
        k.stats,
    ]
    assert all(key.startswith("idsync:{org-1}:") for key in keys)
    assert len(set(keys)) == len(keys)
    with pytest.raises(ValueError, match="Redis key"):
        OrgKeys.of("bad{org}")


@given(
    st.dictionaries(ids, st.text(alphabet="ABCabc012-_", min_size=12, max_size=12)),
    st.integers(min_value=0, max_value=2**53),
)
def test_set_encoding_round_trips(entries: dict[str, str], rev: int) -> None:
    assert decode_set(encode_set(rev, entries)) == (rev, entries)


@given(st.text(alphabet="ABCabc012-_", min_size=1, max_size=16), st.integers(0, 2**53))
def test_user_encoding_round_trips(key: str, rev: int) -> None:
    assert decode_user(encode_user(key, rev)) == (key, rev)


def test_lanes() -> None:
    assert lanes_for("user.deactivated", ["u"], []) == [(LANE_REVOKE, ("u",))]
    assert lanes_for("group.members_changed", ["u", "v"], ["g"]) == [(LANE_REVOKE, ("u", "v"))]
    assert lanes_for("user.created", ["u"], []) == [(LANE_GRANT, ("u",))]
    assert lanes_for("config.binding.created", [], ["g"]) == [(LANE_CONFIG, ("g",))]
    assert lanes_for("config.workspace.updated", [], []) == []
    # registered labels changed: wake the priority drain even when no group is affected
    assert lanes_for("config.resource.updated", [], []) == [(LANE_CONFIG, ())]
    assert lanes_for("config.resource.deleted", [], ["g"]) == [(LANE_CONFIG, ("g",))]
    assert lanes_for("something.new", ["u"], []) == [(LANE_REVOKE, ("u",))]


@given(
    st.sets(st.tuples(st.text(max_size=8), st.text(max_size=8)), max_size=6),
    st.text(min_size=1, max_size=20),
)
def test_label_encoding_round_trips_and_is_canonical(
    labels: set[tuple[str, str]], rid: str
) -> None:
    assert decode_labels(encode_labels(labels)) == frozenset(labels)
    assert encode_labels(sorted(labels, reverse=True)) == encode_labels(labels)
    field = label_field("ws-1", "sync", rid)  # ids may contain "|": the id comes last
    assert label_field_workspace(field) == "ws-1"
    assert field.split("|", 2)[2] == rid
