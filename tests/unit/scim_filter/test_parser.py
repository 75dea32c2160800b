"""Filter, PATCH path and attribute path parsing (RFC 7644 §3.4.2.2, §3.5.2, §3.10)."""

from __future__ import annotations

import re

import pytest

from scim.errors import InvalidFilter, InvalidPath
from scim.filter import (
    MAX_DEPTH,
    MAX_FILTER_LENGTH,
    MAX_TERMS,
    And,
    AttrPath,
    Compare,
    Filter,
    Not,
    Or,
    PatchPath,
    Present,
    ValuePath,
    parse_attr_path,
    parse_filter,
    parse_patch_path,
)

ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"


def p(attr: str, sub: str | None = None, schema: str | None = None) -> AttrPath:
    return AttrPath(schema, attr, sub)


def eq(attr: str, value: object) -> Compare:
    return Compare(p(attr), "eq", value)  # type: ignore[arg-type]


@pytest.mark.parametrize("op", ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"])
def test_every_comparison_operator(op: str) -> None:
    assert parse_filter(f'userName {op} "x"') == Compare(p("userName"), op, "x")  # type: ignore[arg-type]
    assert parse_filter(f'userName {op.upper()} "x"') == Compare(p("userName"), op, "x")  # type: ignore[arg-type]


def test_present() -> None:
    assert parse_filter("title pr") == Present(p("title"))
    assert parse_filter("title PR") == Present(p("title"))


def test_attribute_names_kept_as_written() -> None:
    assert parse_filter('USERNAME eq "x"') == eq("USERNAME", "x")
    assert parse_filter('name.familyName eq "x"') == Compare(p("name", "familyName"), "eq", "x")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"plain"', "plain"),
        ('"with \\"quotes\\""', 'with "quotes"'),
        ('"back\\\\slash"', "back\\slash"),
        ('"tab\\tnl\\n"', "tab\tnl\n"),
        ('"\\u00e9t\\u00E9"', "été"),
        ('"\\ud83d\\ude00"', "\U0001f600"),
        ('"sl\\/ash"', "sl/ash"),
        ('""', ""),
        ('"unicode ünïcödé"', "unicode ünïcödé"),
        ('"(not) [a] filter and or"', "(not) [a] filter and or"),
    ],
)
def test_json_string_literals(text: str, expected: str) -> None:
    assert parse_filter(f"title eq {text}") == eq("title", expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("42", 42),
        ("-7", -7),
        ("1.5", 1.5),
        ("-0.25", -0.25),
        ("1e3", 1000.0),
        ("2.5E-2", 0.025),
        ("-1E+2", -100.0),
        (str(2**63 - 1), 2**63 - 1),
        ("true", True),
        ("false", False),
        ("True", True),
        ("null", None),
        ("NULL", None),
    ],
)
def test_non_string_literals(text: str, expected: object) -> None:
    node = parse_filter(f"x eq {text}")
    assert isinstance(node, Compare)
    assert node.value == expected
    assert type(node.value) is type(expected)


def test_precedence_not_over_and_over_or() -> None:
    a, b, c = Present(p("a")), Present(p("b")), Present(p("c"))
    assert parse_filter("a pr or b pr and c pr") == Or(a, And(b, c))
    assert parse_filter("a pr and b pr or c pr") == Or(And(a, b), c)
    assert parse_filter("not (a pr) and b pr") == And(Not(a), b)
    assert parse_filter("a pr or not (b pr) and c pr") == Or(a, And(Not(b), c))


def test_parentheses_override_precedence() -> None:
    a, b, c = Present(p("a")), Present(p("b")), Present(p("c"))
    assert parse_filter("(a pr or b pr) and c pr") == And(Or(a, b), c)
    assert parse_filter("((a pr))") == a
    assert parse_filter("not ((a pr) or (b pr))") == Not(Or(a, b))
    assert parse_filter("NOT(a pr)") == Not(a)


def test_keywords_case_insensitive_and_whitespace_tolerant() -> None:
    a, b = Present(p("a")), Present(p("b"))
    assert parse_filter("a pr AND b pr") == And(a, b)
    assert parse_filter("  a pr\tOr\nb pr  ") == Or(a, b)


def test_chains_are_balanced() -> None:
    terms = " or ".join(f'userName eq "{i}"' for i in range(300))

    def depth(node: Filter) -> int:
        if isinstance(node, And | Or):
            return 1 + max(depth(node.left), depth(node.right))
        return 1

    assert depth(parse_filter(terms)) <= 10
    assert parse_filter("a pr and b pr and c pr") == And(
        And(Present(p("a")), Present(p("b"))), Present(p("c"))
    )


def test_value_paths() -> None:
    assert parse_filter('emails[type eq "work" and value co "@x"]') == ValuePath(
        p("emails"), And(eq("type", "work"), Compare(p("value"), "co", "@x"))
    )
    assert parse_filter('emails[not (type eq "work")] and title pr') == And(
        ValuePath(p("emails"), Not(eq("type", "work"))), Present(p("title"))
    )
    assert parse_filter(f'{ENT}:manager[value eq "x"]') == ValuePath(
        p("manager", schema=ENT), eq("value", "x")
    )


def test_entra_value_path_with_sub_attribute_comparison() -> None:
    assert parse_filter('emails[type eq "work"].value eq "a@b.c"') == ValuePath(
        p("emails"), And(eq("type", "work"), eq("value", "a@b.c"))
    )
    assert parse_filter('emails[type eq "work"].value pr or x pr') == Or(
        ValuePath(p("emails"), And(eq("type", "work"), Present(p("value")))), Present(p("x"))
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f'{ENT}:employeeNumber eq "1"', p("employeeNumber", schema=ENT)),
        (f'{ENT}:manager.value eq "1"', p("manager", "value", ENT)),
        (f'{CORE}:name.familyName eq "1"', p("name", "familyName", CORE)),
        (f'{CORE}:userName eq "1"', p("userName", schema=CORE)),
        (f'{ENT.upper()}:EMPLOYEENUMBER eq "1"', p("EMPLOYEENUMBER", schema=ENT.upper())),
        ('groups.$ref eq "1"', p("groups", "$ref")),
        ('x_y-z1 eq "1"', p("x_y-z1")),
    ],
)
def test_attribute_paths(text: str, expected: AttrPath) -> None:
    node = parse_filter(text)
    assert isinstance(node, Compare)
    assert node.path == expected


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("", 1, "expected an attribute path"),
        ("userName", 9, "expected an operator"),
        ('userName eqq "x"', 10, "expected an operator"),
        ("userName eq", 12, "expected a value"),
        ("userName eq bjensen", 13, "expected a value"),
        ("userName eq 'x'", 13, "expected a value"),
        ('userName eq "x', 13, "unterminated string"),
        ('userName eq "\\x"', 13, "invalid JSON string"),
        ('userName eq "a\x01"', 13, "invalid JSON string"),
        ('userName eq "\\ud800"', 13, "unpaired surrogate"),
        ('userName eq "\\u0000"', 13, "NUL"),
        ('userName eq "x" and', 20, "expected an attribute path"),
        ('userName eq "x" userName eq "y"', 17, "expected 'and', 'or'"),
        ('(userName eq "x"', 17, "expected ')'"),
        ('userName eq "x")', 16, "expected 'and', 'or'"),
        ('not userName eq "x"', 5, "expected '(' after 'not'"),
        ("not", 4, "expected '(' after 'not'"),
        ('emails[type eq "x"', 19, "expected ']'"),
        ('emails[type[value eq "x"]]', 12, "cannot be nested"),
        ('emails[emails.type eq "x"]', 8, "sub-attribute name"),
        ('emails.type[value eq "x"]', 1, "value filter must follow"),
        ('emails[type eq "x"].value', 26, "expected an operator"),
        ('emails[type eq "x"].9 eq "y"', 21, "invalid sub-attribute"),
        ('a.b.c eq "x"', 1, "invalid attribute name"),
        ('1abc eq "x"', 1, "invalid attribute name"),
        ('urn:x eq "x"', 1, "invalid schema URN"),
        (f'{ENT}: eq "x"', len(ENT) + 2, "attribute name after the schema URN"),
        ("x eq 01", 6, "expected a value"),
        ("x eq 1.", 6, "expected a value"),
        ("x eq 1e999", 6, "out of range"),
        (f"x eq {2**63}", 6, "out of range"),
        ("x eq " + "9" * 5000, 6, "out of range"),
        ("x eq tru", 6, "expected a value"),
        ("]", 1, "expected an attribute path"),
        ("title pr pr", 10, "expected 'and', 'or'"),
    ],
)
def test_errors_name_position_and_cause(text: str, position: int, fragment: str) -> None:
    with pytest.raises(InvalidFilter) as info:
        parse_filter(text)
    message = info.value.detail
    assert f"at character {position}:" in message, message
    assert fragment in message, message
    assert info.value.status == 400
    assert info.value.scim_type == "invalidFilter"


def test_depth_limit() -> None:
    ok = "(" * (MAX_DEPTH - 1) + "a pr" + ")" * (MAX_DEPTH - 1)
    assert parse_filter(ok) == Present(p("a"))
    with pytest.raises(InvalidFilter, match="nested more than"):
        parse_filter("(" * (MAX_DEPTH + 1) + "a pr" + ")" * (MAX_DEPTH + 1))
    with pytest.raises(InvalidFilter, match="nested more than"):
        parse_filter("not (" * 1000 + "a pr" + ")" * 1000)
    with pytest.raises(InvalidFilter):
        parse_filter("(" * 100_000)


def test_length_and_term_limits() -> None:
    with pytest.raises(InvalidFilter, match="longer than"):
        parse_filter('title eq "' + "x" * MAX_FILTER_LENGTH + '"')
    many = " or ".join("a pr" for _ in range(MAX_TERMS + 1))
    with pytest.raises(InvalidFilter, match="comparisons"):
        parse_filter(many)
    parse_filter(" or ".join("a pr" for _ in range(MAX_TERMS)))


def test_non_string_input() -> None:
    with pytest.raises(InvalidFilter):
        parse_filter(None)  # type: ignore[arg-type]


# -- PATCH paths ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("title", PatchPath(p("title"))),
        ("name.givenName", PatchPath(p("name", "givenName"))),
        (f"{ENT}:manager", PatchPath(p("manager", schema=ENT))),
        (f"{ENT}:manager.value", PatchPath(p("manager", "value", ENT))),
        ('members[value eq "2819c223"]', PatchPath(p("members"), eq("value", "2819c223"))),
        (
            'emails[type eq "work"].value',
            PatchPath(p("emails"), eq("type", "work"), "value"),
        ),
        (
            'addresses[type eq "work" and primary eq true].streetAddress',
            PatchPath(
                p("addresses"), And(eq("type", "work"), eq("primary", True)), "streetAddress"
            ),
        ),
        (" title ", PatchPath(p("title"))),
    ],
)
def test_patch_paths(text: str, expected: PatchPath) -> None:
    assert parse_patch_path(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "title eq",
        "a.b.c",
        "emails[",
        'emails[type eq "work"',
        'emails[type eq "work"]x',
        'emails[type eq "work"].value.x',
        'emails[type eq "work"] .value',
        'emails[type eq "work"].value eq "x"',
        'emails[type eq "work"][value eq "x"]',
        'emails.value[type eq "work"]',
        'emails[type zz "work"]',
        "(title)",
    ],
)
def test_patch_path_errors_are_invalid_path(text: str) -> None:
    with pytest.raises(InvalidPath) as info:
        parse_patch_path(text)
    assert info.value.scim_type == "invalidPath"
    assert re.search(r"at character \d+:", info.value.detail)


# -- attribute paths (sortBy, attributes) ---------------------------------------------


def test_attr_paths() -> None:
    assert parse_attr_path("userName") == p("userName")
    assert parse_attr_path("meta.lastModified") == p("meta", "lastModified")
    assert parse_attr_path(f"{ENT}:manager.value") == p("manager", "value", ENT)


@pytest.mark.parametrize("text", ["", "a b", "a[b pr]", "a.", ".a", "a eq", "(a)", '"a"'])
def test_attr_path_errors(text: str) -> None:
    with pytest.raises(InvalidFilter):
        parse_attr_path(text)
