"""SCIM response bodies: orjson's bytes are the standard library's compact UTF-8 JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest

from scim.http import encode_json


def _stdlib(content: Any) -> bytes:
    return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@pytest.mark.parametrize(
    "content",
    [
        {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ada"},
        {"nested": {"list": [1, 2.5, True, None, "x"], "empty": {}}, "n": -(2**63)},
        {"unicode": "Zoë 名前 \U0001f600", "escapes": 'quote " backslash \\ tab \t nl \n'},
        {"control": "\x00\x1f\x7f", "slash": "a/b", "big": 2**63 - 1},
        {"float": 0.1, "exp": 1e300, "neg_zero": -0.0},
        [],
    ],
)
def test_same_bytes_as_the_standard_library(content: Any) -> None:
    assert encode_json(content) == _stdlib(content)


def test_integers_beyond_64_bits_fall_back_to_the_standard_library() -> None:
    content = {"huge": 2**70, "small": 1}
    assert encode_json(content) == _stdlib(content)
    assert json.loads(encode_json(content))["huge"] == 2**70
