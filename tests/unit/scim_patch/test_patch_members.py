"""Group membership PATCHes: never applied to the document, returned as deltas."""

from __future__ import annotations

from typing import Any

import pytest

from scim.errors import ScimError
from scim.patch import PatchResult, apply_patch
from scim.schemas import GROUP_RESOURCE

GROUP: dict[str, Any] = {"displayName": "Engineering", "externalId": "okta-00g1"}


def run(*ops: dict[str, Any], resource_id: str | None = None) -> PatchResult:
    return apply_patch(GROUP, list(ops), GROUP_RESOURCE, resource_id=resource_id)


def deltas(result: PatchResult) -> tuple[list[str], list[str], bool, list[str] | None]:
    return (
        result.members_add,
        result.members_remove,
        result.members_remove_all,
        result.members_replace,
    )


CASES = [
    # Okta
    pytest.param(
        [{"op": "remove", "path": 'members[value eq "u1"]'}],
        ([], ["u1"], False, None),
        id="okta-remove-one-by-filter",
    ),
    pytest.param(
        [{"op": "add", "path": "members", "value": [{"value": "u2", "display": "bob@x"}]}],
        (["u2"], [], False, None),
        id="okta-add",
    ),
    pytest.param(
        [
            {"op": "remove", "path": 'members[value eq "u1"]'},
            {"op": "add", "path": "members", "value": [{"value": "u2", "display": "bob@x"}]},
        ],
        (["u2"], ["u1"], False, None),
        id="okta-remove-then-add",
    ),
    pytest.param(
        [
            {
                "op": "replace",
                "path": "members",
                "value": [{"value": "u1", "display": "a"}, {"value": "u3", "display": "c"}],
            }
        ],
        ([], [], False, ["u1", "u3"]),
        id="okta-replace-all-members",
    ),
    pytest.param(
        [{"op": "replace", "value": {"members": [{"value": "u1"}]}}],
        ([], [], False, ["u1"]),
        id="no-path-replace-members",
    ),
    pytest.param(
        [{"op": "add", "value": {"members": [{"value": "u1"}, {"value": "u1"}]}}],
        (["u1"], [], False, None),
        id="no-path-add-members-deduplicated",
    ),
    # Entra
    pytest.param(
        [{"op": "Add", "path": "members", "value": [{"value": "u1"}]}],
        (["u1"], [], False, None),
        id="entra-add",
    ),
    pytest.param(
        [{"op": "Remove", "path": "members", "value": [{"value": "u1"}]}],
        ([], ["u1"], False, None),
        id="entra-remove-with-value-list-never-all",
    ),
    pytest.param(
        [{"op": "Remove", "path": "members", "value": [{"value": "u1"}, {"value": "u2"}]}],
        ([], ["u1", "u2"], False, None),
        id="entra-remove-two-with-value-list",
    ),
    # OneLogin
    pytest.param(
        [{"op": "add", "path": "members", "value": [{"value": "u1"}, {"value": "u2"}]}],
        (["u1", "u2"], [], False, None),
        id="onelogin-add-batch",
    ),
    pytest.param(
        [{"op": "remove", "path": "members", "value": [{"value": "u2", "type": "User"}]}],
        ([], ["u2"], False, None),
        id="onelogin-remove-batch",
    ),
    # generic
    pytest.param(
        [{"op": "remove", "path": "members"}],
        ([], [], True, None),
        id="remove-without-value-removes-all",
    ),
    pytest.param(
        [{"op": "remove", "path": "members", "value": []}],
        ([], [], False, None),
        id="remove-with-empty-list-removes-nothing",
    ),
    pytest.param(
        [{"op": "remove", "path": 'members[value eq "a" or value eq "b"]'}],
        ([], ["a", "b"], False, None),
        id="filter-or-is-union",
    ),
    pytest.param(
        [{"op": "remove", "path": 'members[value eq "a" and value eq "a"]'}],
        ([], ["a"], False, None),
        id="filter-and-is-intersection",
    ),
    pytest.param(
        [{"op": "remove", "path": 'members[value eq "a" and value eq "b"]'}],
        ([], [], False, None),
        id="filter-and-of-different-ids-selects-nothing",
    ),
    pytest.param(
        [
            {"op": "add", "path": "members", "value": [{"value": "a"}]},
            {"op": "remove", "path": 'members[value eq "a"]'},
        ],
        ([], ["a"], False, None),
        id="add-then-remove-same-id",
    ),
    pytest.param(
        [
            {"op": "remove", "path": 'members[value eq "a"]'},
            {"op": "add", "path": "members", "value": [{"value": "a"}]},
        ],
        (["a"], [], False, None),
        id="remove-then-add-same-id",
    ),
    pytest.param(
        [
            {"op": "replace", "path": "members", "value": [{"value": "a"}, {"value": "b"}]},
            {"op": "add", "path": "members", "value": [{"value": "c"}]},
            {"op": "remove", "path": 'members[value eq "a"]'},
        ],
        ([], [], False, ["b", "c"]),
        id="replace-then-add-then-remove-folds-into-replace",
    ),
    pytest.param(
        [
            {"op": "remove", "path": "members"},
            {"op": "add", "path": "members", "value": [{"value": "x"}]},
        ],
        (["x"], [], True, None),
        id="remove-all-then-add",
    ),
    pytest.param(
        [{"op": "replace", "path": "members", "value": []}],
        ([], [], False, []),
        id="replace-with-empty-list",
    ),
]


@pytest.mark.parametrize(("ops", "expected"), CASES)
def test_member_deltas(ops: list[dict[str, Any]], expected: Any) -> None:
    result = run(*ops)
    assert deltas(result) == expected
    assert result.document == GROUP
    assert not result.changed
    assert "members" not in result.document


def test_okta_rename_and_members_together() -> None:
    result = run(
        {
            "op": "replace",
            "value": {"id": "g1", "displayName": "Eng", "members": [{"value": "u9"}]},
        },
        resource_id="g1",
    )
    assert result.document == {**GROUP, "displayName": "Eng"}
    assert result.changed
    assert result.members_replace == ["u9"]


ERRORS = [
    pytest.param(
        {"op": "remove", "path": 'members[display eq "bob"]'},
        "invalidFilter",
        id="filter-on-display",
    ),
    pytest.param(
        {"op": "remove", "path": 'members[value ne "u1"]'},
        "invalidFilter",
        id="filter-ne-would-remove-everyone-else",
    ),
    pytest.param(
        {"op": "remove", "path": 'members[value co "u"]'},
        "invalidFilter",
        id="filter-co",
    ),
    pytest.param(
        {"op": "remove", "path": 'not (members[value eq "u"])'},
        "invalidPath",
        id="not-is-not-a-path",
    ),
    pytest.param(
        {"op": "remove", "path": 'members[value eq "u1"].display'},
        "invalidPath",
        id="filtered-sub-attribute",
    ),
    pytest.param(
        {"op": "add", "path": 'members[value eq "u1"]', "value": {"value": "u1"}},
        "invalidPath",
        id="filtered-add",
    ),
    pytest.param(
        {"op": "replace", "path": "members.value", "value": "u1"},
        "invalidPath",
        id="sub-attribute-path",
    ),
    pytest.param(
        {"op": "add", "path": "members", "value": [{"value": "g2", "type": "Group"}]},
        "invalidValue",
        id="nested-group",
    ),
    pytest.param(
        {"op": "add", "path": "members", "value": ["u1"]},
        "invalidValue",
        id="bare-string-member",
    ),
    pytest.param(
        {"op": "add", "path": "members", "value": [{"display": "no id"}]},
        "invalidValue",
        id="member-without-value",
    ),
    pytest.param(
        {"op": "remove", "path": "members", "value": None},
        "invalidValue",
        id="remove-with-null-value-is-ambiguous",
    ),
    pytest.param(
        {"op": "remove", "path": "displayName"},
        "mutability",
        id="remove-required-displayName",
    ),
    pytest.param(
        {"op": "replace", "value": {"id": "other", "displayName": "x"}},
        "mutability",
        id="rename-with-foreign-id",
    ),
]


@pytest.mark.parametrize(("op", "scim_type"), ERRORS)
def test_member_errors(op: dict[str, Any], scim_type: str) -> None:
    with pytest.raises(ScimError) as info:
        run(op, resource_id="g1")
    assert info.value.scim_type == scim_type
    assert info.value.status == 400
