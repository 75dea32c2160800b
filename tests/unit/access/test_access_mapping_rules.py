"""Contract §5: mapping rules (exact / prefix / RE2 regex with named captures)."""

from __future__ import annotations

import pytest

from models.access import (
    MappingRule,
    OrgConfig,
    RoleBinding,
    ScimGroup,
    Space,
    UnsafePatternError,
    ValidationError,
    Workspace,
    apply_mapping_rules,
    validate_mapping_rule,
)
from models.access.mapping_rules import MAX_PROGRAM_SIZE, compile_pattern

CFG = OrgConfig(
    workspaces=(
        Workspace("ws-1", name="marketing"),
        Workspace("ws-2", permissions_model="legacy"),
        Workspace("ws-1-dev", parent_workspace_id="ws-1"),
    ),
    spaces=(Space("sp-eu", "ws-1", name="europe"),),
)
REGEX = r"ds-(?P<workspace>[a-z0-9-]+)-(?P<role>admin|editor|viewer)"


def rule(**kw: object) -> MappingRule:
    base: dict[str, object] = {
        "id": "r1",
        "attribute": "displayName",
        "match": "regex",
        "pattern": REGEX,
    }
    base.update(kw)
    return MappingRule(**base)  # type: ignore[arg-type]


def test_regex_captures_produce_bindings_with_rule_provenance() -> None:
    r = rule()
    validate_mapping_rule(r)
    groups = [
        ScimGroup("g1", "ds-ws-1-editor"),
        ScimGroup("g2", "ds-marketing-admin"),
        ScimGroup("g3", "other"),
    ]
    res = apply_mapping_rules([r], groups, CFG)
    assert res.role_bindings == (
        RoleBinding("g1", "ws-1", "editor", "r1"),
        RoleBinding("g2", "ws-1", "admin", "r1"),  # workspace by name
    )
    assert res.problems == ()


def test_missing_targets_are_reported_not_dropped() -> None:
    groups = [ScimGroup("g1", "ds-nowhere-editor"), ScimGroup("g2", "ds-ws-1-dev-admin")]
    res = apply_mapping_rules([rule()], groups, CFG)
    assert res.role_bindings == ()
    assert [(p.group_id, p.field) for p in res.problems] == [
        ("g1", "workspace"),
        ("g2", "workspace"),
    ]
    assert "environment" in res.problems[1].message
    missing_role = rule(id="r2", pattern=r"x-(?P<role>\w+)", workspace="ws-1")
    res2 = apply_mapping_rules([missing_role], [ScimGroup("g", "x-superuser")], CFG)
    assert res2.problems[0].field == "role" and res2.problems[0].rule_id == "r2"


def test_legacy_workspace_alias_and_mismatch() -> None:
    res = apply_mapping_rules([rule()], [ScimGroup("g1", "ds-ws-2-viewer")], CFG)
    assert res.role_bindings == (RoleBinding("g1", "ws-2", "legacy_workspace_viewer", "r1"),)


def test_regex_is_full_match() -> None:
    res = apply_mapping_rules([rule()], [ScimGroup("g1", "prefix-ds-ws-1-editor-suffix")], CFG)
    assert res.role_bindings == () and res.problems == ()


def test_exact_prefix_external_id_and_spaces_and_org_admin() -> None:
    rules = [
        MappingRule("e", "externalId", "exact", "00gABC", workspace="ws-1", role="viewer"),
        MappingRule(
            "p", "displayName", "prefix", "EU ", kind="space", space="europe", ignore_case=True
        ),
        MappingRule("o", "displayName", "exact", "Platform Admins", kind="org_admin"),
    ]
    for r in rules:
        validate_mapping_rule(r)
    groups = [
        ScimGroup("g1", "renamed", external_id="00gABC"),
        ScimGroup("g2", "eu marketing"),
        ScimGroup("g3", "Platform Admins"),
    ]
    res = apply_mapping_rules(rules, groups, CFG)
    assert res.role_bindings == (RoleBinding("g1", "ws-1", "viewer", "e"),)
    assert [(s.group_id, s.workspace_id, s.space_id, s.source) for s in res.space_assignments] == [
        ("g2", "ws-1", "sp-eu", "p")
    ]
    assert [(a.group_id, a.source) for a in res.org_admins] == [("g3", "o")]


@pytest.mark.parametrize(
    "pattern",
    [r"(a)\1", r"(?=x)y", r"(?<!x)y", "(", "a" * 2000],
    ids=["backref", "lookahead", "lookbehind", "syntax", "too-long"],
)
def test_unsafe_or_invalid_patterns_rejected_at_creation(pattern: str) -> None:
    with pytest.raises(UnsafePatternError) as err:
        validate_mapping_rule(rule(pattern=pattern))
    assert err.value.field == "pattern"


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"pattern": r"(?P<team>\w+)"}, "pattern"),
        ({"pattern": r"x-(?P<workspace>\w+)"}, "role"),
        ({"pattern": REGEX, "role": "admin"}, "role"),
        ({"match": "glob"}, "match"),
        ({"attribute": "name"}, "attribute"),
        ({"pattern": ""}, "pattern"),
        ({"match": "exact", "pattern": "x", "kind": "space"}, "space"),
    ],
)
def test_rule_validation_names_the_field(kw: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        validate_mapping_rule(rule(**kw))
    assert err.value.field == field


@pytest.mark.parametrize(
    "pattern",
    [r"(?:[^!]{0,10}){1,99}!z1", r"[a-z0-9-]{1,200}", r"\pL+"],
    ids=["issue-10", "counted-repetition", "unicode-class"],
)
def test_patterns_over_the_program_size_limit_are_refused_naming_the_limit(pattern: str) -> None:
    with pytest.raises(UnsafePatternError) as err:
        validate_mapping_rule(rule(pattern=pattern, workspace="ws-1", role="viewer"))
    assert err.value.field == "pattern"
    assert f"the limit is {MAX_PROGRAM_SIZE}" in err.value.message


def test_usual_patterns_are_well_under_the_program_size_limit() -> None:
    for pattern in (
        REGEX,
        r"(?i)^(?:okta|entra)-(?P<workspace>[a-z0-9-]+)-(?P<role>admin|editor|viewer)$",
        r"^CN=(?P<role>[^,]+),OU=(?P<workspace>[^,]+),DC=example,DC=com$",
        r"^(?:okta|entra)-(?P<workspace>[a-z0-9-]{1,64})-(?P<role>admin|editor|viewer)$",
    ):
        assert compile_pattern(pattern).programsize <= MAX_PROGRAM_SIZE


def test_stored_rule_over_the_limit_is_a_problem_and_evaluations_are_counted() -> None:
    # A rule stored before the limit existed: reported once, never raised, never run.
    costly = rule(id="old", pattern=r"(?:[^!]{0,10}){1,99}!z1", workspace="ws-1", role="viewer")
    groups = [ScimGroup("g1", "ds-ws-1-editor"), ScimGroup("g2", "x", external_id="e")]
    res = apply_mapping_rules([costly, rule()], groups, CFG)
    assert [(p.rule_id, p.group_id, p.field) for p in res.problems] == [("old", None, "pattern")]
    assert res.role_bindings == (RoleBinding("g1", "ws-1", "editor", "r1"),)
    assert res.evaluations == 2  # r1 on both groups; the refused rule on none
    by_external_id = rule(id="e", attribute="externalId")
    assert apply_mapping_rules([by_external_id], groups, CFG).evaluations == 1  # g1 has none
    exact = MappingRule("x", "displayName", "exact", "x", workspace="ws-1", role="viewer")
    assert apply_mapping_rules([exact], groups, CFG).evaluations == 0
