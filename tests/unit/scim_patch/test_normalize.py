"""POST/PUT body normalisation: real IdP bodies, tolerance and rejections."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from scim.errors import ScimError
from scim.normalize import MemberRef, coerce_scalar, normalize_resource, split_name
from scim.schemas import (
    CORE_GROUP,
    CORE_USER,
    ENTERPRISE_USER,
    GROUP_RESOURCE,
    USER_RESOURCE,
    Attribute,
)

ENT = ENTERPRISE_USER


def test_okta_put_with_readonly_and_password() -> None:
    body = {
        "schemas": [CORE_USER, ENT],
        "id": "u-1",
        "userName": "alice@example.com",
        "name": {"givenName": "Alice", "familyName": "Smith"},
        "emails": [{"primary": True, "value": "alice@example.com", "type": "work"}],
        "active": True,
        "password": "Secret123!",
        "groups": [{"value": "g-1", "display": "Eng"}],
        "meta": {"resourceType": "User", "created": "2024-01-01T00:00:00Z"},
        ENT: {"employeeNumber": "42", "manager": {"value": "m-1", "displayName": "Boss"}},
    }
    before = copy.deepcopy(body)
    result = normalize_resource(body, USER_RESOURCE, mode="replace")
    assert result.document == {
        "userName": "alice@example.com",
        "name": {"givenName": "Alice", "familyName": "Smith"},
        "emails": [{"primary": True, "value": "alice@example.com", "type": "work"}],
        "active": True,
        ENT: {"employeeNumber": "42", "manager": {"value": "m-1"}},
    }
    assert result.password_present
    assert result.members is None
    assert body == before


def test_entra_post() -> None:
    body = {
        "schemas": [CORE_USER, ENT],
        "externalId": "0a21f0f2",
        "UserName": "Test_User_ab6490ee@contoso.com",
        "Active": "False",
        "displayName": "Test User",
        "emails": [{"Primary": "true", "type": "work", "value": "t@contoso.com"}],
        "meta": {"resourceType": "User"},
        "name": {"familyName": "familyName", "givenName": "givenName"},
        f"{ENT}:employeeNumber": "123",
        f"{ENT}:manager": "mgr-7",
        "roles": [],
        "title": "",
        "nickName": None,
    }
    result = normalize_resource(body, USER_RESOURCE, mode="create")
    assert result.document == {
        "externalId": "0a21f0f2",
        "userName": "Test_User_ab6490ee@contoso.com",
        "active": False,
        "displayName": "Test User",
        "emails": [{"primary": True, "type": "work", "value": "t@contoso.com"}],
        "name": {"familyName": "familyName", "givenName": "givenName"},
        ENT: {"employeeNumber": "123", "manager": {"value": "mgr-7"}},
    }
    assert not result.password_present


def test_dotted_and_core_urn_keys() -> None:
    body = {
        f"{CORE_USER}:userName": "u",
        "name.givenName": "G",
        "name": {"familyName": "F"},
        f"{ENT.upper()}": {"Department": "D"},
        f"{ENT}:manager.value": "m",
    }
    doc = normalize_resource(body, USER_RESOURCE, mode="create").document
    assert doc == {
        "userName": "u",
        "name": {"givenName": "G", "familyName": "F"},
        ENT: {"department": "D", "manager": {"value": "m"}},
    }


def test_missing_schemas_is_tolerated_and_single_object_is_wrapped() -> None:
    doc = normalize_resource(
        {"userName": "u", "emails": {"value": "e@x"}}, USER_RESOURCE, mode="create"
    ).document
    assert doc == {"userName": "u", "emails": [{"value": "e@x"}]}


def test_empty_extension_is_dropped() -> None:
    doc = normalize_resource(
        {"userName": "u", ENT: {"employeeNumber": "", "manager": None}},
        USER_RESOURCE,
        mode="create",
    ).document
    assert doc == {"userName": "u"}


def test_group_members_are_separated() -> None:
    body = {
        "schemas": [CORE_GROUP],
        "displayName": "Eng",
        "members": [
            {"value": "u1", "display": "a", "$ref": "https://x/Users/u1", "type": "User"},
            {"value": "u2"},
            {"value": "u1"},
            None,
        ],
    }
    result = normalize_resource(body, GROUP_RESOURCE, mode="create")
    assert result.document == {"displayName": "Eng"}
    assert result.members == [MemberRef("u1", "User"), MemberRef("u2")]


@pytest.mark.parametrize(
    ("members", "expected"),
    [(None, []), ([], []), ("", [])],
)
def test_group_members_explicitly_empty(members: Any, expected: list[MemberRef]) -> None:
    body = {"displayName": "Eng", "members": members}
    assert normalize_resource(body, GROUP_RESOURCE, mode="replace").members == expected


def test_group_members_absent_is_none() -> None:
    assert normalize_resource({"displayName": "E"}, GROUP_RESOURCE, mode="replace").members is None


ERRORS = [
    pytest.param(USER_RESOURCE, {"schemas": CORE_USER, "userName": "u"}, "invalidSyntax"),
    pytest.param(USER_RESOURCE, {"schemas": [CORE_GROUP], "userName": "u"}, "invalidValue"),
    pytest.param(
        USER_RESOURCE, {"schemas": [CORE_USER, "urn:okta:custom"], "userName": "u"}, "invalidValue"
    ),
    pytest.param(USER_RESOURCE, {"schemas": [ENT], "userName": "u"}, "invalidValue"),
    pytest.param(USER_RESOURCE, {"userName": "u", "favouriteColour": "red"}, "invalidSyntax"),
    pytest.param(USER_RESOURCE, {"userName": "u", "urn:okta:custom:x": "1"}, "invalidSyntax"),
    pytest.param(USER_RESOURCE, {"userName": "u", "name": {"nope": "x"}}, "invalidValue"),
    pytest.param(USER_RESOURCE, {"userName": "u", "active": "yes"}, "invalidValue"),
    pytest.param(USER_RESOURCE, {"userName": "u", "active": 0}, "invalidValue"),
    pytest.param(USER_RESOURCE, {"userName": 7}, "invalidValue"),
    pytest.param(USER_RESOURCE, {"userName": "u", "name": "Alice"}, "invalidValue"),
    pytest.param(USER_RESOURCE, {"userName": "u", "emails": ["a@x"]}, "invalidValue"),
    pytest.param(USER_RESOURCE, {"userName": "u", ENT: "x"}, "invalidValue"),
    pytest.param(USER_RESOURCE, {"userName": "u", "emails.value": "x"}, "invalidSyntax"),
    pytest.param(USER_RESOURCE, {"displayName": "no userName"}, "invalidValue"),
    pytest.param(USER_RESOURCE, {"userName": ""}, "invalidValue"),
    pytest.param(
        USER_RESOURCE,
        {
            "userName": "u",
            "emails": [{"value": "a", "primary": True}, {"value": "b", "primary": "True"}],
        },
        "invalidValue",
    ),
    pytest.param(USER_RESOURCE, [], "invalidSyntax"),
    pytest.param(GROUP_RESOURCE, {"members": []}, "invalidValue"),
    pytest.param(
        GROUP_RESOURCE,
        {"displayName": "G", "members": [{"value": "g2", "type": "Group"}]},
        "invalidValue",
    ),
    pytest.param(
        GROUP_RESOURCE, {"displayName": "G", "members": [{"type": "User"}]}, "invalidValue"
    ),
    pytest.param(
        GROUP_RESOURCE, {"displayName": "G", "members": [{"value": "u", "x": 1}]}, "invalidValue"
    ),
    pytest.param(GROUP_RESOURCE, {"displayName": "G", "members.value": "u"}, "invalidSyntax"),
]


@pytest.mark.parametrize(("resource", "body", "scim_type"), ERRORS)
def test_errors(resource: Any, body: Any, scim_type: str) -> None:
    with pytest.raises(ScimError) as info:
        normalize_resource(body, resource, mode="create")
    assert info.value.scim_type == scim_type, info.value.detail
    assert info.value.status == 400


def test_wrong_type_error_names_the_attribute() -> None:
    with pytest.raises(ScimError) as info:
        normalize_resource(
            {"userName": "u", "name": {"givenName": 3}}, USER_RESOURCE, mode="create"
        )
    assert "name.givenName" in info.value.detail


def test_unknown_mode_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="mode"):
        normalize_resource({"userName": "u"}, USER_RESOURCE, mode="upsert")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("integer", 3, 3),
        ("decimal", 2.5, 2.5),
        ("decimal", 2, 2),
        ("dateTime", "2024-02-29T10:00:00Z", "2024-02-29T10:00:00Z"),
        ("reference", "https://x", "https://x"),
        ("boolean", " FALSE ", False),
    ],
)
def test_scalar_types(kind: Any, value: Any, expected: Any) -> None:
    assert coerce_scalar(Attribute("x", kind), value, "x") == expected


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("integer", True),
        ("integer", 2.5),
        ("integer", "3"),
        ("decimal", "2.5"),
        ("dateTime", "yesterday"),
        ("reference", 5),
    ],
)
def test_scalar_type_errors(kind: Any, value: Any) -> None:
    with pytest.raises(ScimError) as info:
        coerce_scalar(Attribute("x", kind), value, "x")
    assert info.value.scim_type == "invalidValue"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("userName", (None, "userName", None)),
        ("name.givenName", (None, "name", "givenName")),
        (f"{ENT}:manager.value", (ENT, "manager", "value")),
        (ENT.lower(), (ENT, None, None)),
        (f"{CORE_USER}:userName", (CORE_USER, "userName", None)),
    ],
)
def test_split_name(text: str, expected: tuple[str | None, str | None, str | None]) -> None:
    name = split_name(USER_RESOURCE, text)
    assert name is not None
    assert (name.schema, name.attr, name.sub) == expected


def test_split_name_unknown_urn() -> None:
    assert split_name(USER_RESOURCE, "urn:example:custom:1.0:User:x") is None
