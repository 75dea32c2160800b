"""Validation of custom roles and configs: typed errors naming the offending field."""

from __future__ import annotations

import pytest

from models.access import (
    OrgConfig,
    RoleBinding,
    UnknownGrantError,
    ValidationError,
    Workspace,
    config_problems,
    parse_legacy_role,
    parse_v2_role,
    validate_custom_role,
)


def test_parse_v2_role_ok() -> None:
    role = parse_v2_role(
        {
            "id": "mkt",
            "name": "Marketing",
            "workspace_grants": ["access_agents"],
            "resource_grants": [
                {
                    "scope": "parent_model",
                    "resource_id": "*",
                    "grants": ["configure_audiences_syncs"],
                    "subset_limit": {"region": ["EU"]},
                },
                {"scope": "event_source", "resource_id": "es1", "grants": ["edit", "sync"]},
            ],
        }
    )
    validate_custom_role(role)
    assert role.resource_grants[0].subset_limit is not None


@pytest.mark.parametrize(
    ("data", "field", "error"),
    [
        ({"workspace_grants": ["fly"]}, "workspace_grants[0]", UnknownGrantError),
        ({"workspace_grants": ["manage_workspace"]}, "workspace_grants[0]", ValidationError),
        (
            {"resource_grants": [{"scope": "planet", "resource_id": "*", "grants": ["x"]}]},
            "resource_grants[0].scope",
            UnknownGrantError,
        ),
        (
            {
                "resource_grants": [
                    {"scope": "source", "resource_id": "*", "grants": ["configure_syncs"]}
                ]
            },
            "resource_grants[0].grants[0]",
            UnknownGrantError,
        ),
        (
            {"resource_grants": [{"scope": "source", "resource_id": "", "grants": ["view_data"]}]},
            "resource_grants[0].resource_id",
            ValidationError,
        ),
        (
            {
                "resource_grants": [
                    {
                        "scope": "source",
                        "resource_id": "*",
                        "grants": ["view_data"],
                        "subset_limit": {"r": ["x"]},
                    }
                ]
            },
            "resource_grants[0].subset_limit",
            ValidationError,
        ),
        (
            {
                "resource_grants": [
                    {
                        "scope": "parent_model",
                        "resource_id": "*",
                        "grants": ["configure_journeys"],
                        "subset_limit": {"r": ["x"]},
                    }
                ]
            },
            "resource_grants[0].subset_limit",
            ValidationError,
        ),
        ({"colour": "red"}, "colour", ValidationError),
    ],
)
def test_parse_v2_role_errors(data: dict[str, object], field: str, error: type[Exception]) -> None:
    with pytest.raises(error) as err:
        parse_v2_role({"id": "x", "name": "x", **data})
    assert err.value.field == field  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        (
            '{"statements": [{"effect": "deny", "actions": "*", "resource": "*"}]}',
            "statements[0].effect",
        ),
        ({"statements": [{"actions": ["fly"], "resource": "sync"}]}, "statements[0].actions[0]"),
        (
            {"statements": [{"actions": ["start"], "resource": "source"}]},
            "statements[0].actions[0]",
        ),
        ({"statements": [{"actions": "*", "resource": "planet"}]}, "statements[0].resource"),
        (
            {"statements": [{"actions": "*", "resource": "sync", "conditions": {"owner": "x"}}]},
            "statements[0].conditions.owner",
        ),
        ("{not json", "policy"),
    ],
)
def test_parse_legacy_policy_errors(policy: object, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_legacy_role("c", "c", policy)  # type: ignore[arg-type]
    assert err.value.field == field


def test_builtin_ids_are_reserved() -> None:
    role = parse_v2_role({"id": "admin", "name": "x"})
    with pytest.raises(ValidationError) as err:
        validate_custom_role(role)
    assert err.value.field == "id"


def test_config_problems_reported() -> None:
    cfg = OrgConfig(
        workspaces=(
            Workspace("w1"),
            Workspace("env", parent_workspace_id="w1"),
            Workspace("orphan", parent_workspace_id="gone"),
        ),
        role_bindings=(
            RoleBinding("g", "w1", "legacy_admin"),
            RoleBinding("g", "env", "viewer"),
            RoleBinding("g", "nope", "viewer"),
            RoleBinding("g", "w1", "ghost"),
        ),
    )
    kinds = {(p.kind, p.field) for p in config_problems(cfg)}
    assert ("workspace", "parent_workspace_id") in kinds
    assert ("role_binding", "workspace_id") in kinds
    assert ("role_binding", "role_id") in kinds
    assert len(config_problems(cfg)) == 5
