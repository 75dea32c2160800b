"""What the SCIM request log stores of a body: secrets masked at any depth, in PATCH
values whose path names a credential and in free text; a body with nothing to mask is
stored as compact JSON without the masking walk, exactly as the walk would store it."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from idsync.scim_log.redaction import (
    _mask_members,
    _mask_operations,
    redact_body,
)
from models.redaction import REDACTED, redact

USER = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    "userName": "ann@example.com",
    "name": {"givenName": "Ann", "familyName": "Lee"},
    "emails": [{"value": "ann@example.com", "type": "work", "primary": True}],
    "active": True,
    "title": 'Line 1\nLine 2\t"quoted"',
}


def _walked(body: Any) -> str:
    """The masking walk's result (what every body went through before the fast path)."""
    return _mask_members(orjson.dumps(redact(_mask_operations(body))).decode())


@pytest.mark.parametrize(
    "body",
    [
        USER,
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": False}],
        },
        {"displayName": "Engineering", "members": [{"value": "u1"}, {"value": "u2"}]},
        {"deep": [[[[[[[[[[{"a": "b"}]]]]]]]]]]},
        {"unicode": "Zoë Ünïcødé ✓"},
    ],
)
def test_a_body_with_nothing_to_mask_is_stored_as_the_walk_stores_it(body: Any) -> None:
    assert redact_body(orjson.dumps(body), 65_536) == _walked(body)


@pytest.mark.parametrize(
    ("body", "secret"),
    [
        ({**USER, "password": "hunter2-pw"}, "hunter2-pw"),
        (
            {
                "schemas": [],
                "Operations": [{"op": "replace", "path": "password", "value": "s3cr3t-value"}],
            },
            "s3cr3t-value",
        ),
        ({**USER, "title": "Bearer abc.def.ghi"}, "abc.def.ghi"),
        ({**USER, "title": "BEARER\tabc.def.ghi"}, "abc.def.ghi"),
        ({**USER, "note": "token=zzz-token-value"}, "zzz-token-value"),
        ({"deep": [[[[[[[[[[{"client_secret": "deep-secret-1"}]]]]]]]]]]}, "deep-secret-1"),
        ({"urn:x:ext": {"apiKey": "k-123456"}}, "k-123456"),
    ],
)
def test_a_secret_is_never_stored(body: Any, secret: str) -> None:
    stored = redact_body(orjson.dumps(body), 65_536)
    assert stored is not None
    assert secret not in stored
    assert REDACTED in stored


def test_an_empty_body_is_none_and_text_is_masked_and_cut() -> None:
    assert redact_body(b"", 100) is None
    stored = redact_body(b"not json: Bearer abcdef password=xyz " + b"x" * 500, 64)
    assert stored is not None
    assert "abcdef" not in stored and "xyz" not in stored
    assert stored.endswith("[truncated]")
