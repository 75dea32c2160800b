"""PATCH never loses what it was not asked to change (issue 10 #14, #15, #16).

Vectors from other SCIM libraries' PATCH tests, replayed: a filtered replace without a
sub-attribute merges into every matching value (RFC 7644 §3.5.2.3); `{}` merges nothing
and never clears (RFC 7643 §2.5: only null and [] mean unassigned); removing a
sub-attribute of matching values unassigns only that sub-attribute (§3.5.2.2), so a
value may be left without `value`, as a POST body may create one.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from scim.errors import ScimError
from scim.patch import apply_patch
from scim.schemas import ENTERPRISE_USER, GROUP_RESOURCE, USER_RESOURCE

ENT = ENTERPRISE_USER

USER: dict[str, Any] = {
    "userName": "alice@example.com",
    "name": {"givenName": "Alice", "familyName": "Smith"},
    "title": "Engineer",
    "emails": [
        {"value": "a@work.example", "type": "work", "primary": True},
        {"value": "a2@work.example", "type": "work"},
        {"value": "a@home.example", "type": "home"},
    ],
    ENT: {"employeeNumber": "42", "manager": {"value": "mgr-1"}},
}
WORK, WORK2, HOME = USER["emails"]


def _patch(*ops: dict[str, Any]) -> dict[str, Any]:
    before = copy.deepcopy(USER)
    result = apply_patch(USER, list(ops), USER_RESOURCE)
    assert before == USER
    assert result.changed is (result.document != USER)
    return result.document


# --- #14: filtered replace without a sub-attribute --------------------------------------


@pytest.mark.parametrize("op", ["replace", "add"])
def test_filtered_write_without_sub_attribute_merges_into_every_match(op: str) -> None:
    doc = _patch({"op": op, "path": 'emails[type eq "work"]', "value": {"display": "Work"}})
    assert doc["emails"] == [
        {**WORK, "display": "Work"},
        {**WORK2, "display": "Work"},
        HOME,
    ]


def test_filtered_replace_of_value_keeps_the_other_sub_attributes() -> None:
    doc = _patch(
        {"op": "replace", "path": 'emails[value eq "a2@work.example"]', "value": {"value": "b@x"}}
    )
    assert doc["emails"] == [WORK, {"value": "b@x", "type": "work"}, HOME]


def test_filtered_replace_with_null_value_unassigns_only_value() -> None:
    doc = _patch({"op": "replace", "path": 'emails[type eq "work"]', "value": {"value": None}})
    assert doc["emails"] == [{"type": "work", "primary": True}, {"type": "work"}, HOME]


# --- #15: {} merges nothing -------------------------------------------------------------

NOOPS = [
    pytest.param({"op": "replace", "path": "name", "value": {}}, id="replace-name"),
    pytest.param({"op": "add", "path": "name", "value": {}}, id="add-name"),
    pytest.param({"op": "replace", "value": {"name": {}}}, id="no-path-replace-name"),
    pytest.param({"op": "add", "value": {"name": {}}}, id="no-path-add-name"),
    pytest.param({"op": "replace", "path": f"{ENT}:manager", "value": {}}, id="manager"),
    pytest.param({"op": "replace", "value": {f"{ENT}:manager": {}}}, id="no-path-manager"),
    pytest.param({"op": "replace", "path": ENT, "value": {}}, id="extension-path"),
    pytest.param({"op": "replace", "value": {ENT: {}}}, id="no-path-extension"),
    pytest.param({"op": "add", "value": {ENT: {}}}, id="no-path-add-extension"),
    pytest.param({"op": "replace", "value": {ENT: {"manager": {}}}}, id="nested-manager"),
    pytest.param(
        {"op": "replace", "path": 'emails[type eq "work"]', "value": {}}, id="filtered-element"
    ),
    pytest.param(
        {"op": "replace", "path": 'emails[type eq "other"]', "value": {}}, id="filtered-no-match"
    ),
    pytest.param({"op": "add", "path": "emails", "value": {}}, id="add-multi-valued"),
]


@pytest.mark.parametrize("op", NOOPS)
def test_empty_object_changes_nothing(op: dict[str, Any]) -> None:
    result = apply_patch(USER, [op], USER_RESOURCE)
    assert result.document == USER
    assert not result.changed


def test_empty_object_next_to_given_sub_attributes_keeps_the_rest() -> None:
    doc = _patch({"op": "replace", "value": {"name": {}, "title": "Lead"}})
    assert doc["name"] == USER["name"] and doc["title"] == "Lead"


REFUSED = [
    pytest.param({"op": "replace", "path": "title", "value": {}}, id="simple-attribute"),
    pytest.param({"op": "replace", "path": "name.givenName", "value": {}}, id="sub-attribute"),
    pytest.param({"op": "replace", "value": {"title": {}}}, id="no-path-simple"),
    pytest.param({"op": "replace", "value": {"name.givenName": {}}}, id="no-path-dotted"),
    pytest.param({"op": "replace", "value": {"name": {"givenName": {}}}}, id="nested-sub"),
    pytest.param(
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": {}},
        id="filtered-sub-attribute",
    ),
    pytest.param(
        {"op": "replace", "path": "emails", "value": {}}, id="replace-multi-valued-with-object"
    ),
]


@pytest.mark.parametrize("op", REFUSED)
def test_empty_object_for_a_simple_value_or_a_whole_list_is_400(op: dict[str, Any]) -> None:
    with pytest.raises(ScimError) as err:
        apply_patch(USER, [op], USER_RESOURCE)
    assert (err.value.status, err.value.scim_type) == (400, "invalidValue")


def test_null_and_empty_list_still_clear() -> None:
    doc = _patch(
        {"op": "replace", "path": "name", "value": None},
        {"op": "replace", "path": "emails", "value": []},
        {"op": "replace", "value": {ENT: None}},
    )
    assert "name" not in doc and "emails" not in doc and ENT not in doc


def test_group_members_replace_with_empty_object_is_400_and_add_is_nothing() -> None:
    group = {"displayName": "g"}
    with pytest.raises(ScimError) as err:
        apply_patch(group, [{"op": "replace", "path": "members", "value": {}}], GROUP_RESOURCE)
    assert (err.value.status, err.value.scim_type) == (400, "invalidValue")
    added = apply_patch(group, [{"op": "add", "path": "members", "value": {}}], GROUP_RESOURCE)
    assert not added.members_changed and not added.changed


# --- #16: removing a sub-attribute of matching values -----------------------------------


def test_remove_filtered_value_unassigns_only_that_sub_attribute() -> None:
    doc = _patch({"op": "remove", "path": "emails[primary eq true].value"})
    assert doc["emails"] == [{"type": "work", "primary": True}, WORK2, HOME]


def test_remove_sub_attribute_of_all_values_keeps_the_values() -> None:
    doc = _patch({"op": "remove", "path": "emails.value"})
    assert doc["emails"] == [{"type": "work", "primary": True}, {"type": "work"}, {"type": "home"}]


def test_value_left_without_any_sub_attribute_is_removed() -> None:
    start = {"userName": "bob", "emails": [{"value": "b@x"}, {"value": "c@x", "type": "home"}]}
    result = apply_patch(
        start, [{"op": "remove", "path": 'emails[value eq "b@x"].value'}], USER_RESOURCE
    )
    assert result.document["emails"] == [{"value": "c@x", "type": "home"}]


def test_valueless_email_gets_its_value_back_through_the_filter() -> None:
    doc = _patch({"op": "remove", "path": "emails[primary eq true].value"})
    result = apply_patch(
        doc,
        [{"op": "replace", "path": "emails[primary eq true].value", "value": "new@work.example"}],
        USER_RESOURCE,
    )
    assert result.document["emails"][0] == {
        "type": "work",
        "primary": True,
        "value": "new@work.example",
    }
