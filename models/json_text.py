"""Layer: pure. What JSON text a request body may be: strict UTF-8, bounded nesting.

Python's `json.loads(bytes)` decodes with `surrogatepass`, so the raw bytes of a UTF-16
surrogate (`ED A0 80`, which is not UTF-8) become a string no backend can store or even
encode; and its parser, like every recursive walk after it (validation, rendering,
`json.dumps`), raises RecursionError near Python's recursion limit (~1000 levels, fewer
on a deep stack). Both were 500s. A body is therefore decoded strictly as UTF-8 (RFC 8259
§8.1) and refused when nested deeper than `MAX_DEPTH` levels, before anything walks it.

No SCIM or admin-API document needs more than ~8 levels (a Bulk operation carrying a
PATCH of a multi-valued complex attribute is 7); 32 leaves room and keeps every
recursive walk far from the limit. The SCIM API (`scim.http.parse_json_object`) and
/api/v1 (`idsync.body_guard`, `idsync.input_guard`) share these checks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

MAX_DEPTH = 32


class JsonTextError(ValueError):
    """A body that is not storable JSON text; `detail` says why (for a 4xx)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def utf8_text(raw: bytes) -> str:
    """`raw` decoded as UTF-8, strictly (no surrogates, no invalid sequences)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonTextError(
            f"request body is not valid UTF-8 (byte {exc.start}: {exc.reason})"
        ) from None


def may_be_too_deep(raw: bytes | str, limit: int = MAX_DEPTH) -> bool:
    """A cheap bound: text with at most `limit` opening brackets cannot nest deeper."""
    if isinstance(raw, str):
        return raw.count("[") + raw.count("{") > limit
    return raw.count(b"[") + raw.count(b"{") > limit


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether a parsed JSON value nests objects/arrays deeper than `limit` (no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Any
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def nesting_error(limit: int = MAX_DEPTH) -> JsonTextError:
    return JsonTextError(f"request body nests objects and arrays deeper than {limit} levels")


def loads(raw: bytes, parse_constant: Callable[[str], Any] | None = None) -> Any:
    """Parse a request body: strict UTF-8, at most `MAX_DEPTH` levels. Raises
    JsonTextError for either, ValueError (json.JSONDecodeError) for bad syntax."""
    text = utf8_text(raw)
    try:
        value = json.loads(text, parse_constant=parse_constant)
    except RecursionError:
        raise nesting_error() from None
    if may_be_too_deep(raw) and too_deep(value):
        raise nesting_error()
    return value


def body_problem(raw: bytes) -> str | None:
    """Why `raw` is not a body to parse (not UTF-8, nested too deep), or None. Syntax
    errors are left to the caller's own parser."""
    try:
        text = utf8_text(raw)
    except JsonTextError as exc:
        return exc.detail
    if not may_be_too_deep(text):
        return None
    try:
        value = json.loads(text)
    except RecursionError:
        return nesting_error().detail
    except ValueError:
        return None
    return nesting_error().detail if too_deep(value) else None
