"""Property tests: any text raises only InvalidFilter/InvalidPath; ASTs round-trip;
any well-formed filter compiles (both dialects) or raises InvalidFilter, never crashes."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from models.db.tables import Group, User
from scim.errors import InvalidFilter, InvalidPath, InvalidValue
from scim.filter import (
    And,
    AttrPath,
    Compare,
    Filter,
    Not,
    Or,
    Present,
    ValuePath,
    compile_filter,
    compile_sort,
    matches,
    parse_attr_path,
    parse_filter,
    parse_patch_path,
)
from scim.schemas import GROUP_RESOURCE, USER_RESOURCE, USER_SCHEMA

FRAGMENTS = [
    "userName", "emails", "name.givenName", "[", "]", "(", ")", " ", '"', "\\", "eq", "ne",
    "co", "pr", "gt", "and", "or", "not", "true", "null", "1", "-2.5e3", ".", ":", "urn:",
    "urn:ietf:params:scim:schemas:core:2.0:User:", '"x"', '"\\u00e9"', "$ref", "\x00", "é",
]  # fmt: skip

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def filterish() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=60),
        st.lists(st.sampled_from(FRAGMENTS), max_size=25).map("".join),
        st.lists(st.sampled_from(FRAGMENTS), max_size=25).map(" ".join),
    )


@SETTINGS
@given(filterish())
def test_any_text_parses_or_raises_invalid_filter(text: str) -> None:
    with contextlib.suppress(InvalidFilter):
        parse_filter(text)


@SETTINGS
@given(filterish())
def test_any_text_patch_path_raises_only_invalid_path(text: str) -> None:
    with contextlib.suppress(InvalidPath):
        parse_patch_path(text)


@SETTINGS
@given(filterish())
def test_any_text_attr_path_and_sort_raise_only_scim_errors(text: str) -> None:
    with contextlib.suppress(InvalidFilter):
        parse_attr_path(text)
    for resource in (USER_RESOURCE, GROUP_RESOURCE):
        for dialect in ("sqlite", "postgresql"):
            with contextlib.suppress(InvalidValue):
                compile_sort(text, None, resource, dialect_name=dialect)


# -- generated ASTs ---------------------------------------------------------------------

NAMES = ["userName", "title", "emails", "name", "active", "groups", "meta", "members",
         "displayName", "externalId", "id", "bogus", "$ref"]  # fmt: skip
SUBS = [None, "value", "type", "primary", "givenName", "created", "display", "$ref", "zz"]
SCHEMAS = [None, None, None, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]
OPS = ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]
VALUES: st.SearchStrategy[Any] = st.one_of(
    st.text(max_size=8).filter(
        lambda s: "\x00" not in s and not any(0xD800 <= ord(c) < 0xE000 for c in s)
    ),
    st.booleans(),
    st.none(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(["2024-01-01T00:00:00Z", "work", "%_\\*?[", 'W/"1"']),
)


def paths(relative: bool) -> st.SearchStrategy[AttrPath]:
    if relative:
        return st.builds(
            AttrPath, st.none(), st.sampled_from(["value", "type", "primary", "display", "x"])
        )
    return st.builds(
        AttrPath,
        st.sampled_from(SCHEMAS),
        st.sampled_from([*NAMES, "employeeNumber", "manager"]),
        st.sampled_from(SUBS),
    )


def leaves(relative: bool) -> st.SearchStrategy[Filter]:
    return st.one_of(
        st.builds(Present, paths(relative)),
        st.builds(Compare, paths(relative), st.sampled_from(OPS), VALUES),
    )


def filters(relative: bool) -> st.SearchStrategy[Filter]:
    def extend(children: st.SearchStrategy[Filter]) -> st.SearchStrategy[Filter]:
        return st.one_of(
            st.builds(And, children, children),
            st.builds(Or, children, children),
            st.builds(Not, children),
        )

    base = leaves(relative)
    if not relative:
        value_path = st.builds(
            ValuePath,
            st.builds(
                AttrPath,
                st.none(),
                st.sampled_from(["emails", "name", "groups", "members", "title"]),
            ),
            filters(True),
        )
        base = st.one_of(base, value_path)
    return st.recursive(base, extend, max_leaves=8)


def render_path(path: AttrPath) -> str:
    text = path.attr if path.sub_attr is None else f"{path.attr}.{path.sub_attr}"
    return text if path.schema is None else f"{path.schema}:{text}"


def render(node: Filter) -> str:
    if isinstance(node, And):
        return f"({render(node.left)}) and ({render(node.right)})"
    if isinstance(node, Or):
        return f"({render(node.left)}) OR ({render(node.right)})"
    if isinstance(node, Not):
        return f"not ({render(node.expr)})"
    if isinstance(node, ValuePath):
        return f"{render_path(node.path)}[{render(node.filter)}]"
    if isinstance(node, Present):
        return f"{render_path(node.path)} pr"
    return f"{render_path(node.path)} {node.op} {json.dumps(node.value)}"


@SETTINGS
@given(filters(False))
def test_rendered_filters_round_trip(node: Filter) -> None:
    assert parse_filter(render(node)) == node


@SETTINGS
@given(filters(False))
def test_generated_filters_compile_or_raise_invalid_filter(node: Filter) -> None:
    for resource, table in ((USER_RESOURCE, User), (GROUP_RESOURCE, Group)):
        for name, dialect in (("sqlite", sqlite.dialect()), ("postgresql", postgresql.dialect())):
            try:
                condition = compile_filter(node, resource, dialect_name=name)
            except InvalidFilter:
                continue
            str(select(table.id).where(condition).compile(dialect=dialect))


ELEMENT = st.dictionaries(
    st.sampled_from(["value", "type", "primary", "display", "Value"]),
    st.one_of(
        st.text(max_size=5),
        st.booleans(),
        st.none(),
        st.integers(),
        st.lists(st.integers(), max_size=2),
    ),
)


@SETTINGS
@given(filters(True), ELEMENT)
def test_matcher_returns_bool_or_raises_invalid_filter(
    node: Filter, element: dict[str, Any]
) -> None:
    emails = USER_SCHEMA.attr("emails")
    assert emails is not None
    try:
        result = matches(node, element, emails)
    except InvalidFilter:
        return
    assert isinstance(result, bool)
