"""Test-only stand-in for `scim.filter.match` until the real matcher lands.

`scim.patch` imports `matches` from `scim.filter.match`. When that module is missing
this conftest registers a tiny private implementation (eq/ne/co/sw/ew/pr with
and/or/not, caseExact per the schema) so the PATCH tests can run; once the real
module exists it is used and this does nothing.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

from scim.filter.ast import And, Compare, Filter, Not, Or, Present
from scim.schemas import Attribute


def _norm(sub: Attribute | None, value: Any) -> Any:
    if isinstance(value, str) and not (sub is not None and sub.case_exact):
        return value.lower()
    if sub is not None and sub.type == "boolean" and isinstance(value, str):
        return value.lower() == "true"
    return value


def _standin_matches(flt: Filter, element: dict[str, Any], attr: Attribute) -> bool:
    if isinstance(flt, And):
        return _standin_matches(flt.left, element, attr) and _standin_matches(
            flt.right, element, attr
        )
    if isinstance(flt, Or):
        return _standin_matches(flt.left, element, attr) or _standin_matches(
            flt.right, element, attr
        )
    if isinstance(flt, Not):
        return not _standin_matches(flt.expr, element, attr)
    if isinstance(flt, Present):
        return element.get(_canon(attr, flt.path.attr)) not in (None, "", [], {})
    if isinstance(flt, Compare):
        sub = attr.sub(flt.path.attr)
        have = _norm(sub, element.get(_canon(attr, flt.path.attr)))
        want = _norm(sub, flt.value)
        if flt.op == "eq":
            return bool(have == want)
        if flt.op == "ne":
            return bool(have != want)
        if not isinstance(have, str) or not isinstance(want, str):
            return False
        if flt.op == "co":
            return want in have
        if flt.op == "sw":
            return have.startswith(want)
        if flt.op == "ew":
            return have.endswith(want)
        return False
    return False


def _canon(attr: Attribute, name: str) -> str:
    sub = attr.sub(name)
    return sub.name if sub is not None else name


try:
    importlib.import_module("scim.filter.match")
except ModuleNotFoundError:
    _module = types.ModuleType("scim.filter.match")
    _module.matches = _standin_matches  # type: ignore[attr-defined]
    sys.modules["scim.filter.match"] = _module
