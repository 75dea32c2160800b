"""Real IdP PATCH shapes (Okta, Microsoft Entra, OneLogin) replayed against a User."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from scim.patch import apply_patch
from scim.schemas import ENTERPRISE_USER, GROUP_RESOURCE, USER_RESOURCE

ENT = ENTERPRISE_USER
ABSENT = object()

USER: dict[str, Any] = {
    "userName": "alice@example.com",
    "externalId": "ext-1",
    "name": {"givenName": "Alice", "familyName": "Smith"},
    "displayName": "Alice Smith",
    "title": "Engineer",
    "active": True,
    "emails": [{"value": "alice@example.com", "type": "work", "primary": True}],
    ENT: {"employeeNumber": "42", "department": "R&D", "manager": {"value": "mgr-1"}},
}

USER_HOME_ONLY: dict[str, Any] = {
    "userName": "bob@example.com",
    "emails": [{"value": "bob@home.example", "type": "home", "primary": True}],
}


CASES = [
    # --- Okta -------------------------------------------------------------------------
    pytest.param(
        USER,
        [{"op": "replace", "value": {"active": False}}],
        {"active": False},
        id="okta-deactivate",
    ),
    pytest.param(
        {**USER, "active": False},
        [{"op": "replace", "value": {"active": True}}],
        {"active": True},
        id="okta-reactivate",
    ),
    pytest.param(
        USER,
        [
            {
                "op": "replace",
                "value": {
                    "name": {"givenName": "Ally"},
                    "emails": [{"value": "ally@example.com", "type": "work", "primary": True}],
                },
            }
        ],
        {
            "name": {"givenName": "Ally", "familyName": "Smith"},
            "emails": [{"value": "ally@example.com", "type": "work", "primary": True}],
        },
        id="okta-profile-replace-merges-name-replaces-emails",
    ),
    # --- Microsoft Entra --------------------------------------------------------------
    pytest.param(
        USER,
        [{"op": "Replace", "path": "active", "value": "False"}],
        {"active": False},
        id="entra-disable-string-false",
    ),
    pytest.param(
        USER,
        [{"op": "Replace", "path": "active", "value": "TRUE"}],
        {"active": True},
        id="entra-enable-string-true-any-case",
    ),
    pytest.param(
        USER,
        [
            {"op": "Replace", "path": "displayName", "value": "Alice S."},
            {"op": "Add", "path": "nickName", "value": "Al"},
        ],
        {"displayName": "Alice S.", "nickName": "Al"},
        id="entra-capitalised-ops",
    ),
    pytest.param(
        USER,
        [
            {
                "op": "Replace",
                "value": {
                    "name.givenName": "Ally",
                    "name.familyName": "Smyth",
                    f"{ENT}:employeeNumber": "99",
                    "Active": "False",
                },
            }
        ],
        {
            "name": {"givenName": "Ally", "familyName": "Smyth"},
            "active": False,
            ENT: {"employeeNumber": "99", "department": "R&D", "manager": {"value": "mgr-1"}},
        },
        id="entra-no-path-dotted-and-urn-keys",
    ),
    pytest.param(
        USER,
        [{"op": "Replace", "path": "UserName", "value": "alice@new.example"}],
        {"userName": "alice@new.example"},
        id="entra-UserName-casing",
    ),
    pytest.param(
        USER,
        [{"op": "Replace", "path": f"{ENT}:manager", "value": "mgr-2"}],
        {ENT: {"employeeNumber": "42", "department": "R&D", "manager": {"value": "mgr-2"}}},
        id="entra-manager-bare-id",
    ),
    pytest.param(
        USER,
        [{"op": "Add", "path": f"{ENT}:manager", "value": {"value": "mgr-3"}}],
        {ENT: {"employeeNumber": "42", "department": "R&D", "manager": {"value": "mgr-3"}}},
        id="entra-manager-object",
    ),
    pytest.param(
        USER,
        [{"op": "Remove", "path": f"{ENT}:manager", "value": [{"value": "mgr-1"}]}],
        {ENT: {"employeeNumber": "42", "department": "R&D"}},
        id="entra-remove-manager-with-value",
    ),
    pytest.param(
        USER_HOME_ONLY,
        [{"op": "Replace", "path": 'emails[type eq "work"].value', "value": "bob@corp.example"}],
        {
            "emails": [
                {"value": "bob@home.example", "type": "home", "primary": True},
                {"type": "work", "value": "bob@corp.example"},
            ]
        },
        id="entra-replace-filtered-email-creates-missing-work-email",
    ),
    pytest.param(
        {"userName": "carol@example.com"},
        [{"op": "Add", "path": 'emails[type eq "work"].value', "value": "carol@corp.example"}],
        {"emails": [{"type": "work", "value": "carol@corp.example"}]},
        id="entra-add-filtered-email-creates-attribute",
    ),
    pytest.param(
        USER,
        [{"op": "Replace", "path": 'emails[type eq "work"].value', "value": "a2@example.com"}],
        {"emails": [{"value": "a2@example.com", "type": "work", "primary": True}]},
        id="entra-replace-filtered-email-updates-existing",
    ),
    pytest.param(
        USER,
        [
            {
                "op": "Add",
                "path": 'phoneNumbers[type eq "mobile"].value',
                "value": "+1 555 0100",
            }
        ],
        {"phoneNumbers": [{"type": "mobile", "value": "+1 555 0100"}]},
        id="entra-add-mobile-phone",
    ),
    pytest.param(
        USER_HOME_ONLY,
        [{"op": "Replace", "path": 'emails[type eq "work"].value', "value": ""}],
        {},
        id="entra-clear-missing-work-email-is-noop",
    ),
    pytest.param(
        USER,
        [
            {"op": "Replace", "path": "title", "value": ""},
            {"op": "Replace", "path": "displayName", "value": None},
            {"op": "Replace", "path": f"{ENT}:department", "value": ""},
        ],
        {
            "title": ABSENT,
            "displayName": ABSENT,
            ENT: {"employeeNumber": "42", "manager": {"value": "mgr-1"}},
        },
        id="entra-empty-string-and-null-clear",
    ),
    pytest.param(
        USER,
        [{"op": "Replace", "value": {"title": "", "name.givenName": None}}],
        {"title": ABSENT, "name": {"familyName": "Smith"}},
        id="entra-no-path-empty-clears",
    ),
    pytest.param(
        USER,
        [
            {"op": "Replace", "path": f"{ENT}:employeeNumber", "value": ""},
            {"op": "Replace", "path": f"{ENT}:department", "value": ""},
            {"op": "Remove", "path": f"{ENT}:manager"},
        ],
        {ENT: ABSENT},
        id="entra-clearing-last-extension-attribute-drops-extension",
    ),
    pytest.param(
        USER,
        [{"op": "Replace", "path": 'emails[type eq "work"].value', "value": ""}],
        {"emails": [{"type": "work", "primary": True}]},  # only `value` is unassigned
        id="entra-clear-work-email-value-keeps-element",
    ),
    pytest.param(
        USER,
        [
            {
                "op": "Replace",
                "value": {ENT: {"employeeNumber": "7", "Manager": "mgr-9"}},
            }
        ],
        {ENT: {"employeeNumber": "7", "department": "R&D", "manager": {"value": "mgr-9"}}},
        id="nested-extension-object-no-path",
    ),
    pytest.param(
        USER,
        [{"op": "replace", "path": "name", "value": {"givenName": "Ali"}}],
        {"name": {"givenName": "Ali", "familyName": "Smith"}},
        id="replace-complex-keeps-unspecified-sub-attributes",
    ),
    pytest.param(
        USER,
        [{"op": "add", "path": "name.middleName", "value": "Q"}],
        {"name": {"givenName": "Alice", "familyName": "Smith", "middleName": "Q"}},
        id="add-sub-attribute",
    ),
    pytest.param(
        USER,
        [{"op": "remove", "path": "name.givenName"}],
        {"name": {"familyName": "Smith"}},
        id="remove-sub-attribute",
    ),
    pytest.param(
        USER,
        [{"op": "add", "path": "title", "value": "Lead"}],
        {"title": "Lead"},
        id="add-single-valued-replaces",
    ),
    pytest.param(
        USER,
        [{"op": "remove", "path": 'emails[type eq "work"]'}],
        {"emails": ABSENT},
        id="remove-filtered-last-email-unassigns",
    ),
    pytest.param(
        USER,
        [{"op": "remove", "path": "emails"}],
        {"emails": ABSENT},
        id="remove-multi-valued-without-filter",
    ),
]


def _expected(start: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(start)
    for key, value in delta.items():
        if value is ABSENT:
            out.pop(key, None)
        else:
            out[key] = value
    return out


@pytest.mark.parametrize(("start", "ops", "delta"), CASES)
def test_idp_patch(start: dict[str, Any], ops: list[dict[str, Any]], delta: dict[str, Any]) -> None:
    before = copy.deepcopy(start)
    result = apply_patch(start, ops, USER_RESOURCE)
    expected = _expected(start, delta)
    assert result.document == expected
    assert result.changed is (expected != start)
    assert start == before, "the input document must not be modified"
    assert not result.members_changed


def test_okta_group_rename_with_id() -> None:
    doc = {"displayName": "Old"}
    result = apply_patch(
        doc,
        [{"op": "replace", "value": {"id": "g-1", "displayName": "New"}}],
        GROUP_RESOURCE,
        resource_id="g-1",
    )
    assert result.document == {"displayName": "New"}
    assert result.changed
    assert not result.members_changed


def test_id_in_no_path_value_ignored_without_resource_id() -> None:
    result = apply_patch(
        {"displayName": "Old"},
        [{"op": "replace", "value": {"id": "whatever", "displayName": "New"}}],
        GROUP_RESOURCE,
    )
    assert result.document == {"displayName": "New"}


def test_whole_patchop_body_is_accepted() -> None:
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": False}}],
    }
    assert apply_patch(USER, body, USER_RESOURCE).document["active"] is False


def test_readonly_attributes_in_no_path_value_are_ignored() -> None:
    result = apply_patch(
        USER,
        [
            {
                "op": "replace",
                "value": {
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "meta": {"resourceType": "User"},
                    "groups": [{"value": "g"}],
                    "title": "Boss",
                },
            }
        ],
        USER_RESOURCE,
    )
    assert result.document == {**USER, "title": "Boss"}


def test_password_is_dropped_and_reported() -> None:
    result = apply_patch(
        USER, [{"op": "replace", "value": {"password": "s3cret!", "title": "T"}}], USER_RESOURCE
    )
    assert "password" not in result.document
    assert result.password_present
    result = apply_patch(USER, [{"op": "replace", "path": "password", "value": "x"}], USER_RESOURCE)
    assert result.password_present and not result.changed


def test_noop_replace_is_not_a_change() -> None:
    result = apply_patch(
        USER,
        [
            {"op": "replace", "path": "title", "value": "Engineer"},
            {"op": "Replace", "path": "active", "value": "True"},
            {"op": "add", "path": "emails", "value": [{"value": "ALICE@example.com"}]},
        ],
        USER_RESOURCE,
    )
    assert not result.changed
    assert result.document == USER
