"""In-memory value-path matching, and the shape of the compiled SQL (no database)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from models.db.tables import Group, User
from scim.errors import InvalidFilter
from scim.filter import compile_filter, compile_sort, matches, parse_filter, parse_patch_path
from scim.filter.sql import glob_pattern, like_pattern
from scim.schemas import GROUP_RESOURCE, GROUP_SCHEMA, USER_RESOURCE, USER_SCHEMA, Attribute


def _declared(attr: Attribute | None) -> Attribute:
    assert attr is not None
    return attr


EMAILS = _declared(USER_SCHEMA.attr("emails"))
MEMBERS = _declared(GROUP_SCHEMA.attr("members"))
assert EMAILS is not None
assert MEMBERS is not None

WORK = {"value": "Bjensen@Example.com", "type": "work", "primary": True}
HOME = {"value": "babs@home.org", "type": "home"}
BARE: dict[str, Any] = {"value": "x@y.z"}


def _match(value_filter: str, element: dict[str, Any], attr: Attribute = EMAILS) -> bool:
    node = parse_patch_path(f"{attr.name}[{value_filter}]").value_filter
    assert node is not None
    return matches(node, element, attr)


@pytest.mark.parametrize(
    ("flt", "element", "expected"),
    [
        ('type eq "work"', WORK, True),
        ('type eq "WORK"', WORK, True),
        ('type eq "work"', HOME, False),
        ('type ne "work"', HOME, True),
        ('type ne "work"', BARE, True),
        ('type eq "work"', BARE, False),
        ('value co "EXAMPLE"', WORK, True),
        ('value sw "bjensen@"', WORK, True),
        ('value ew ".COM"', WORK, True),
        ('value ew ".org"', WORK, False),
        ('value gt "a"', WORK, True),
        ('value lt "a"', WORK, False),
        ('value co ""', WORK, True),
        ("primary eq true", WORK, True),
        ("primary eq true", HOME, False),
        ("primary ne true", HOME, True),
        ("primary pr", WORK, True),
        ("primary pr", HOME, False),
        ("type eq null", BARE, True),
        ("type ne null", WORK, True),
        ('type eq "work" and primary eq true', WORK, True),
        ('type eq "work" and primary eq true', HOME, False),
        ('type eq "home" or primary eq true', WORK, True),
        ('not (type eq "work")', WORK, False),
        ('not (type eq "work")', BARE, True),
        ('TYPE eq "work"', WORK, True),
        ('type eq "work"', {"Type": "work"}, True),
        ('type eq "work"', {"type": 5}, False),
        ("display pr", {"display": ""}, False),
    ],
)
def test_matches(flt: str, element: dict[str, Any], expected: bool) -> None:
    assert _match(flt, element) is expected


def test_member_values_are_case_exact_ids() -> None:
    member = {"value": "abc-DEF", "display": "Babs"}
    assert _match('value eq "abc-DEF"', member, MEMBERS)
    assert not _match('value eq "ABC-def"', member, MEMBERS)
    assert _match('display eq "babs"', member, MEMBERS)


@pytest.mark.parametrize(
    "flt",
    ['nope eq "x"', "primary gt true", 'primary eq "maybe"', "value eq 5", "value gt null"],
)
def test_matcher_rejects_what_sql_rejects(flt: str) -> None:
    with pytest.raises(InvalidFilter):
        _match(flt, WORK)


def test_matcher_rejects_non_relative_paths() -> None:
    with pytest.raises(InvalidFilter):
        matches(parse_filter('emails.type eq "work"'), WORK, EMAILS)
    with pytest.raises(InvalidFilter):
        matches(parse_filter('emails[type eq "work"]'), WORK, EMAILS)


# -- compiled SQL shape -------------------------------------------------------------------


def _sql(flt: str, dialect: str, table: type[User] | type[Group] = User) -> str:
    resource = USER_RESOURCE if table is User else GROUP_RESOURCE
    condition = compile_filter(parse_filter(flt), resource, dialect_name=dialect)
    engine_dialect = postgresql.dialect() if dialect == "postgresql" else sqlite.dialect()
    query = select(table.id).where(condition)
    return str(query.compile(dialect=engine_dialect, compile_kwargs={"literal_binds": True}))


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_user_name_eq_hits_the_norm_column_with_a_lowered_literal(dialect: str) -> None:
    sql = _sql('userName eq "BJensen"', dialect)
    assert "scim_users.user_name_norm = 'bjensen'" in sql
    assert "lower(" not in sql


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_indexed_columns(dialect: str) -> None:
    assert "scim_users.external_id = 'E'" in _sql('externalId eq "E"', dialect)
    assert "scim_users.id = 'i'" in _sql('id eq "i"', dialect)
    assert "scim_users.active" in _sql("active eq true", dialect)
    assert "scim_users.created_at >" in _sql('meta.created gt "2024-01-01T00:00:00Z"', dialect)
    assert "scim_users.updated_at <" in _sql('meta.lastModified lt "2024-01-01T00:00:00Z"', dialect)
    assert "scim_groups.display_name_norm = 'admins'" in _sql(
        'displayName eq "Admins"', dialect, Group
    )


def test_exists_over_arrays_and_memberships() -> None:
    assert "jsonb_array_elements" in _sql('emails[type eq "work"]', "postgresql")
    assert "json_each" in _sql('emails[type eq "work"]', "sqlite")
    assert "scim_group_members" in _sql('groups.value eq "g"', "sqlite")
    assert "scim_group_members" in _sql('members[value eq "u"]', "postgresql", Group)


def test_string_ordering_is_code_point_on_postgresql() -> None:
    assert 'COLLATE "C"' in _sql('title gt "m"', "postgresql")
    clauses = compile_sort("userName", None, USER_RESOURCE, dialect_name="postgresql")
    assert 'COLLATE "C"' in str(clauses[0].compile(dialect=postgresql.dialect()))


def test_case_exact_substring_on_sqlite_uses_glob() -> None:
    assert "GLOB" in _sql('externalId co "x"', "sqlite")
    assert "LIKE" in _sql('externalId co "x"', "postgresql")
    assert "LIKE" in _sql('title co "x"', "sqlite")


@pytest.mark.parametrize(
    ("value", "op", "like", "glob"),
    [
        ("a%b", "co", "%a\\%b%", "*a%b*"),
        ("a_b", "sw", "a\\_b%", "a_b*"),
        ("a\\b", "ew", "%a\\\\b", "*a\\b"),
        ("*?[x]", "co", "%*?[x]%", "*[*][?][[]x]*"),
    ],
)
def test_pattern_escaping(value: str, op: str, like: str, glob: str) -> None:
    assert like_pattern(value, op) == like
    assert glob_pattern(value, op) == glob


def test_unknown_dialect_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="dialect"):
        compile_filter(parse_filter("title pr"), USER_RESOURCE, dialect_name="mysql")
