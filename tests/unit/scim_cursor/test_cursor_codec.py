"""scim.cursor: opaque RFC 9865 cursors, bound to what they were issued for."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from scim.cursor import Position, decode, encode
from scim.errors import InvalidCursor

AT = datetime(2026, 11, 22, 8, 0, 0, 123456, tzinfo=UTC)
ISSUED = {"resource_type": "User", "org_id": "org-a", "flt": 'userName sw "a"'}


def test_round_trip_with_unreserved_characters_only() -> None:
    cursor = encode(Position(AT, "u-1"), **ISSUED)
    assert re.fullmatch(r"[A-Za-z0-9\-._~]+", cursor)
    assert decode(cursor, **ISSUED) == Position(AT, "u-1")


@pytest.mark.parametrize(
    "other",
    [
        {"resource_type": "Group"},
        {"org_id": "org-b"},
        {"flt": 'userName sw "b"'},
        {"flt": None},
    ],
)
def test_a_cursor_only_fits_its_own_query(other: dict[str, str | None]) -> None:
    cursor = encode(Position(AT, "u-1"), **ISSUED)
    with pytest.raises(InvalidCursor) as caught:
        decode(cursor, **{**ISSUED, **other})  # type: ignore[arg-type]
    assert caught.value.status == 400 and caught.value.scim_type == "invalidCursor"


@pytest.mark.parametrize(
    "junk", ["x", "e30", "bm90IGpzb24", "eyJ2IjoyfQ", "eyJ2IjoxLCJjIjoibm8iLCJpIjoxfQ", "%%%"]
)
def test_anything_else_is_an_invalid_cursor(junk: str) -> None:
    with pytest.raises(InvalidCursor):
        decode(junk, **ISSUED)
