"""PATCH error cases (with scimType), request shape, primary uniqueness, de-duplication,
remove-by-value and atomicity."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from scim.errors import ScimError
from scim.patch import apply_patch, parse_patch_request
from scim.schemas import ENTERPRISE_USER, PATCH_OP, USER_RESOURCE

ENT = ENTERPRISE_USER

USER: dict[str, Any] = {
    "userName": "alice@example.com",
    "name": {"givenName": "Alice", "familyName": "Smith"},
    "title": "Engineer",
    "active": True,
    "emails": [
        {"value": "a@work.example", "type": "work", "primary": True},
        {"value": "a@home.example", "type": "home"},
    ],
    ENT: {"employeeNumber": "42", "manager": {"value": "mgr-1"}},
}


ERRORS = [
    # request shape
    pytest.param({"op": "remove"}, "noTarget", id="remove-without-path"),
    pytest.param({"op": "remove", "path": ""}, "noTarget", id="remove-with-empty-path"),
    pytest.param({"op": "move", "path": "title", "value": "x"}, "invalidSyntax", id="bad-op"),
    pytest.param({"path": "title", "value": "x"}, "invalidSyntax", id="missing-op"),
    pytest.param({"op": 3, "path": "title", "value": "x"}, "invalidSyntax", id="op-not-string"),
    pytest.param({"op": "add", "path": "title"}, "invalidValue", id="add-without-value"),
    pytest.param({"op": "replace"}, "invalidValue", id="no-path-replace-without-value"),
    pytest.param({"op": "replace", "value": "x"}, "invalidValue", id="no-path-value-not-object"),
    pytest.param({"op": "replace", "path": 5, "value": "x"}, "invalidPath", id="path-not-string"),
    # paths
    pytest.param({"op": "replace", "path": "nope", "value": "x"}, "invalidPath", id="unknown"),
    pytest.param(
        {"op": "replace", "path": "name.nope", "value": "x"}, "invalidPath", id="unknown-sub"
    ),
    pytest.param(
        {"op": "replace", "path": "urn:example:custom:1.0:User:foo", "value": "x"},
        "invalidPath",
        id="unknown-schema",
    ),
    pytest.param(
        {"op": "replace", "path": 'emails[type eq "work"', "value": "x"},
        "invalidPath",
        id="malformed",
    ),
    pytest.param(
        {"op": "replace", "path": 'name[givenName eq "A"].familyName', "value": "x"},
        "invalidPath",
        id="filter-on-single-valued",
    ),
    pytest.param(
        {"op": "replace", "path": 'emails[nope eq "A"].value', "value": "x"},
        "invalidPath",
        id="unknown-attribute-in-filter",
    ),
    pytest.param({"op": "replace", "value": {"nope": 1}}, "invalidPath", id="no-path-unknown-key"),
    pytest.param(
        {"op": "replace", "value": {"urn:example:x:User:a": 1}},
        "invalidPath",
        id="no-path-unknown-urn",
    ),
    # mutability
    pytest.param({"op": "replace", "path": "id", "value": "x"}, "mutability", id="id"),
    pytest.param(
        {"op": "replace", "path": "meta.created", "value": "2020-01-01T00:00:00Z"},
        "mutability",
        id="meta",
    ),
    pytest.param(
        {"op": "add", "path": "groups", "value": [{"value": "g"}]}, "mutability", id="groups"
    ),
    pytest.param(
        {"op": "replace", "path": f"{ENT}:manager.displayName", "value": "Boss"},
        "mutability",
        id="manager-displayName",
    ),
    pytest.param({"op": "remove", "path": "userName"}, "mutability", id="remove-required"),
    pytest.param(
        {"op": "replace", "path": "userName", "value": ""},
        "mutability",
        id="clear-required-with-empty-string",
    ),
    pytest.param(
        {"op": "replace", "value": {"userName": None}}, "mutability", id="clear-required-no-path"
    ),
    # noTarget
    pytest.param(
        {"op": "remove", "path": 'emails[type eq "other"]'}, "noTarget", id="remove-no-match"
    ),
    pytest.param(
        {"op": "remove", "path": 'phoneNumbers[type eq "work"]'},
        "noTarget",
        id="remove-no-match-absent-attribute",
    ),
    pytest.param(
        {"op": "replace", "path": 'emails[value co "zzz"].type', "value": "other"},
        "noTarget",
        id="replace-no-match-non-eq-filter",
    ),
    pytest.param(
        {"op": "replace", "path": 'emails[type eq "work" or type eq "x"].display', "value": "d"}
        | {"path": 'emails[type eq "x" or type eq "y"].display'},
        "noTarget",
        id="replace-no-match-or-filter",
    ),
    # values
    pytest.param(
        {"op": "replace", "path": "active", "value": "maybe"}, "invalidValue", id="bad-bool"
    ),
    pytest.param({"op": "replace", "path": "active", "value": 1}, "invalidValue", id="int-bool"),
    pytest.param({"op": "replace", "path": "title", "value": 5}, "invalidValue", id="int-str"),
    pytest.param(
        {"op": "replace", "path": "title", "value": {"a": 1}}, "invalidValue", id="object-str"
    ),
    pytest.param(
        {"op": "replace", "path": "name", "value": "Alice"}, "invalidValue", id="str-complex"
    ),
    pytest.param(
        {"op": "replace", "path": "name", "value": {"nope": "x"}},
        "invalidValue",
        id="unknown-sub-in-value",
    ),
    pytest.param(
        {"op": "add", "path": "emails", "value": [{"value": 5}]},
        "invalidValue",
        id="bad-element-type",
    ),
    pytest.param(
        {
            "op": "add",
            "path": "emails",
            "value": [
                {"value": "x@a", "primary": True},
                {"value": "y@a", "primary": "True"},
            ],
        },
        "invalidValue",
        id="two-primaries-in-one-value",
    ),
    pytest.param(
        {"op": "replace", "path": "emails.primary", "value": True},
        "invalidValue",
        id="primary-on-all-values",
    ),
    pytest.param(
        {"op": "remove", "path": "emails", "value": None},
        "invalidValue",
        id="remove-multi-with-null-value-is-ambiguous",
    ),
]


@pytest.mark.parametrize(("op", "scim_type"), ERRORS)
def test_errors(op: dict[str, Any], scim_type: str) -> None:
    before = copy.deepcopy(USER)
    with pytest.raises(ScimError) as info:
        apply_patch(USER, [op], USER_RESOURCE, resource_id="u1")
    assert info.value.scim_type == scim_type, info.value.detail
    assert info.value.status == 400
    assert info.value.detail.startswith("operation 1: ")
    assert before == USER


@pytest.mark.parametrize(
    "body",
    [
        pytest.param([], id="not-an-object"),
        pytest.param({"schemas": [PATCH_OP]}, id="no-operations"),
        pytest.param({"schemas": [PATCH_OP], "Operations": []}, id="empty-operations"),
        pytest.param({"schemas": [PATCH_OP], "Operations": {"op": "add"}}, id="ops-not-list"),
        pytest.param({"schemas": [PATCH_OP], "Operations": ["add"]}, id="op-not-object"),
        pytest.param(
            {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "Operations": [{}]},
            id="wrong-schema",
        ),
        pytest.param({"schemas": PATCH_OP, "Operations": [{}]}, id="schemas-not-list"),
    ],
)
def test_request_shape_errors(body: Any) -> None:
    with pytest.raises(ScimError) as info:
        parse_patch_request(body)
    assert info.value.scim_type == "invalidSyntax"


def test_request_shape_tolerates_missing_schemas_and_key_case() -> None:
    ops = [{"op": "add", "path": "title", "value": "x"}]
    assert parse_patch_request({"Operations": ops}) == ops
    assert parse_patch_request({"schemas": [PATCH_OP.upper()], "operations": ops}) == ops


def test_apply_patch_rejects_empty_operation_list() -> None:
    with pytest.raises(ScimError) as info:
        apply_patch(USER, [], USER_RESOURCE)
    assert info.value.scim_type == "invalidSyntax"


def test_atomicity_failing_third_op_leaves_document_untouched() -> None:
    doc = copy.deepcopy(USER)
    before = copy.deepcopy(doc)
    ops: list[dict[str, Any]] = [
        {"op": "replace", "path": "title", "value": "Boss"},
        {"op": "add", "path": "emails", "value": [{"value": "n@x", "primary": True}]},
        {"op": "replace", "path": "id", "value": "hijack"},
    ]
    with pytest.raises(ScimError) as info:
        apply_patch(doc, ops, USER_RESOURCE)
    assert info.value.scim_type == "mutability"
    assert info.value.detail.startswith("operation 3: ")
    assert doc == before


# --- primary ----------------------------------------------------------------------------


def _primaries(doc: dict[str, Any]) -> list[str]:
    return [e["value"] for e in doc.get("emails", []) if e.get("primary") is True]


def test_adding_a_primary_value_unsets_the_old_primary() -> None:
    result = apply_patch(
        USER,
        [{"op": "add", "path": "emails", "value": [{"value": "new@x", "primary": "True"}]}],
        USER_RESOURCE,
    )
    assert _primaries(result.document) == ["new@x"]
    assert result.document["emails"][0]["primary"] is False


def test_setting_primary_via_filter_unsets_others() -> None:
    result = apply_patch(
        USER,
        [{"op": "replace", "path": 'emails[type eq "home"].primary', "value": True}],
        USER_RESOURCE,
    )
    assert _primaries(result.document) == ["a@home.example"]


def test_replace_all_values_with_single_primary() -> None:
    result = apply_patch(
        USER,
        [
            {
                "op": "replace",
                "path": "emails",
                "value": [{"value": "x@x", "primary": True}, {"value": "y@y"}],
            }
        ],
        USER_RESOURCE,
    )
    assert result.document["emails"] == [{"value": "x@x", "primary": True}, {"value": "y@y"}]


def test_add_without_primary_keeps_existing_primary() -> None:
    result = apply_patch(
        USER,
        [{"op": "add", "path": "emails", "value": [{"value": "z@z", "type": "other"}]}],
        USER_RESOURCE,
    )
    assert _primaries(result.document) == ["a@work.example"]
    assert len(result.document["emails"]) == 3


def test_readding_existing_value_merges_instead_of_duplicating() -> None:
    result = apply_patch(
        USER,
        [
            {
                "op": "add",
                "path": "emails",
                "value": [{"value": "A@HOME.example", "type": "home", "primary": True}],
            }
        ],
        USER_RESOURCE,
    )
    assert result.document["emails"] == [
        {"value": "a@work.example", "type": "work", "primary": False},
        {"value": "a@home.example", "type": "home", "primary": True},
    ]


def test_same_value_with_other_type_is_a_new_value() -> None:
    result = apply_patch(
        USER,
        [{"op": "add", "path": "emails", "value": {"value": "a@home.example", "type": "other"}}],
        USER_RESOURCE,
    )
    assert len(result.document["emails"]) == 3


# --- remove by value / filtered -------------------------------------------------------


def test_remove_multi_valued_with_value_list_removes_only_those() -> None:
    result = apply_patch(
        USER,
        [{"op": "remove", "path": "emails", "value": [{"value": "A@home.example"}]}],
        USER_RESOURCE,
    )
    assert [e["value"] for e in result.document["emails"]] == ["a@work.example"]


def test_remove_multi_valued_with_empty_list_removes_nothing() -> None:
    result = apply_patch(USER, [{"op": "remove", "path": "emails", "value": []}], USER_RESOURCE)
    assert not result.changed


def test_remove_filtered_sub_attribute() -> None:
    result = apply_patch(
        USER, [{"op": "remove", "path": 'emails[type eq "work"].primary'}], USER_RESOURCE
    )
    assert result.document["emails"][0] == {"value": "a@work.example", "type": "work"}


def test_remove_absent_attribute_without_filter_is_a_noop() -> None:
    result = apply_patch(USER, [{"op": "remove", "path": "nickName"}], USER_RESOURCE)
    assert not result.changed


def test_replace_filtered_whole_element() -> None:
    result = apply_patch(
        USER,
        [
            {
                "op": "replace",
                "path": 'emails[type eq "home"]',
                "value": {"value": "new@home", "type": "home"},
            }
        ],
        USER_RESOURCE,
    )
    assert result.document["emails"][1] == {"value": "new@home", "type": "home"}


def test_add_filtered_whole_element_merges() -> None:
    result = apply_patch(
        USER,
        [{"op": "add", "path": 'emails[type eq "home"]', "value": {"display": "Home"}}],
        USER_RESOURCE,
    )
    assert result.document["emails"][1] == {
        "value": "a@home.example",
        "type": "home",
        "display": "Home",
    }


def test_replace_filtered_with_null_removes_matching_elements() -> None:
    result = apply_patch(
        USER, [{"op": "replace", "path": 'emails[type eq "home"]', "value": None}], USER_RESOURCE
    )
    assert [e["type"] for e in result.document["emails"]] == ["work"]


def test_entra_create_with_two_eq_clauses() -> None:
    result = apply_patch(
        {"userName": "u"},
        [
            {
                "op": "replace",
                "path": 'addresses[type eq "work" and country eq "DE"].locality',
                "value": "Berlin",
            }
        ],
        USER_RESOURCE,
    )
    assert result.document["addresses"] == [{"type": "work", "country": "DE", "locality": "Berlin"}]


def test_multiple_ops_compose_in_order() -> None:
    result = apply_patch(
        USER,
        [
            {"op": "remove", "path": "title"},
            {"op": "add", "path": "title", "value": "CTO"},
            {"op": "replace", "path": "name.givenName", "value": "Al"},
            {"op": "remove", "path": f"{ENT}:employeeNumber"},
        ],
        USER_RESOURCE,
    )
    assert result.document["title"] == "CTO"
    assert result.document["name"]["givenName"] == "Al"
    assert result.document[ENT] == {"manager": {"value": "mgr-1"}}


def test_path_naming_the_whole_extension() -> None:
    result = apply_patch(
        USER,
        [{"op": "add", "path": ENT.lower(), "value": {"department": "Ops", "employeeNumber": ""}}],
        USER_RESOURCE,
    )
    assert result.document[ENT] == {"department": "Ops", "manager": {"value": "mgr-1"}}
    result = apply_patch(USER, [{"op": "remove", "path": ENT}], USER_RESOURCE)
    assert ENT not in result.document


def test_path_naming_the_core_schema_cannot_be_removed() -> None:
    with pytest.raises(ScimError) as info:
        apply_patch(USER, [{"op": "remove", "path": USER_RESOURCE.schema.id}], USER_RESOURCE)
    assert info.value.scim_type == "mutability"
