"""Layer: pure. In-memory evaluation of value-path filters on one complex value (PATCH, RFC 7644
§3.5.2).

`matches(parse_patch_path('emails[type eq "work"]').value_filter, element, emails_attr)`
decides whether one element of a multi-valued complex attribute is targeted. Semantics
are those of the SQL compiler (`scim.filter.sql`): caseExact per attribute (ids,
externalId, `$ref`, binary and `groups`/`members` values are always caseExact), `ne` is
`not eq` (true when the sub-attribute is absent), `eq null` is "not present", `pr` is
present and not null (strings non-empty), string ordering is by code point.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from scim.errors import InvalidFilter
from scim.filter.ast import And, Compare, Filter, Not, Or, Present, ValuePath, parse_datetime
from scim.filter.semantics import (
    NUMBER_TYPES,
    STRING_TYPES,
    ComparisonValue,
    as_utc,
    comparison_value,
    is_case_exact,
    sub_attribute,
)
from scim.schemas import Attribute

_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}


def matches(flt: Filter, element: Mapping[str, Any], attr: Attribute) -> bool:
    """Whether `element` (one value of complex `attr`) satisfies `flt`.

    Paths in `flt` name sub-attributes of `attr`; raises InvalidFilter for unknown ones
    and for operator/value combinations the attribute's type does not support.
    """
    if isinstance(flt, And):
        return matches(flt.left, element, attr) and matches(flt.right, element, attr)
    if isinstance(flt, Or):
        return matches(flt.left, element, attr) or matches(flt.right, element, attr)
    if isinstance(flt, Not):
        return not matches(flt.expr, element, attr)
    if isinstance(flt, ValuePath):
        raise InvalidFilter(f"value filters cannot be nested inside '{attr.name}[...]'")
    sub = sub_attribute(attr, flt.path)
    actual = lookup(element, sub.name)
    if isinstance(flt, Present):
        return is_present(actual)
    return _compare_node(flt, sub, attr, actual)


def _compare_node(node: Compare, sub: Attribute, parent: Attribute, actual: Any) -> bool:
    value = comparison_value(sub, node.op, node.value, f"{parent.name}.{sub.name}")
    if value is None:
        return is_present(actual) if node.op == "ne" else not is_present(actual)
    if node.op == "ne":
        return not compare(sub, "eq", value, actual, is_case_exact(sub, parent))
    return compare(sub, node.op, value, actual, is_case_exact(sub, parent))


def lookup(element: Mapping[str, Any], name: str) -> Any:
    """`element[name]`, the key matched case-insensitively (exact spelling first)."""
    if name in element:
        return element[name]
    low = name.lower()
    return next((v for k, v in element.items() if isinstance(k, str) and k.lower() == low), None)


def is_present(value: Any) -> bool:
    """`pr`: not null; strings, arrays and objects also non-empty."""
    if value is None:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


def compare(
    attr: Attribute, op: str, expected: ComparisonValue, actual: Any, case_exact: bool
) -> bool:
    """`actual op expected` for a non-null `expected`; False when types do not fit."""
    if attr.type in STRING_TYPES:
        if not isinstance(actual, str) or not isinstance(expected, str):
            return False
        return _compare_strings(op, expected, actual, case_exact)
    if attr.type == "boolean":
        return isinstance(actual, bool) and actual == expected
    if attr.type == "dateTime":
        moment = _as_datetime(actual)
        return moment is not None and _ORDER[op](moment, expected)
    if attr.type in NUMBER_TYPES:
        if isinstance(actual, bool) or not isinstance(actual, int | float):
            return False
        return _ORDER[op](actual, expected)
    return False


def _compare_strings(op: str, expected: str, actual: str, case_exact: bool) -> bool:
    if not case_exact:
        expected, actual = expected.lower(), actual.lower()
    if op == "co":
        return expected in actual
    if op == "sw":
        return actual.startswith(expected)
    if op == "ew":
        return actual.endswith(expected)
    return _ORDER[op](actual, expected)


def _as_datetime(value: Any) -> datetime | None:
    parsed = value if isinstance(value, datetime) else None
    if isinstance(value, str):
        parsed = parse_datetime(value)
    if parsed is None:
        return None
    try:
        return as_utc(parsed)
    except OverflowError:
        return None
