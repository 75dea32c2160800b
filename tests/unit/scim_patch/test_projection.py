"""attributes / excludedAttributes projection and `returned` rules."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from scim.projection import project, wants
from scim.schemas import CORE_GROUP, CORE_USER, ENTERPRISE_USER, GROUP_RESOURCE, USER_RESOURCE

ENT = ENTERPRISE_USER
META = {"resourceType": "User", "version": 'W/"3"', "location": "https://x/Users/u1"}

USER: dict[str, Any] = {
    "schemas": [CORE_USER, ENT],
    "id": "u1",
    "externalId": "e1",
    "userName": "alice",
    "name": {"givenName": "Alice", "familyName": "Smith"},
    "password": "leaked?",
    "emails": [
        {"value": "a@w", "type": "work", "primary": True},
        {"value": "a@h", "type": "home"},
    ],
    "groups": [{"value": "g1", "display": "Eng", "type": "direct"}],
    ENT: {"employeeNumber": "42", "manager": {"value": "m1", "displayName": "Boss"}},
    "meta": META,
}

GROUP: dict[str, Any] = {
    "schemas": [CORE_GROUP],
    "id": "g1",
    "displayName": "Eng",
    "members": [{"value": "u1", "type": "User"}],
    "meta": META,
}


def _user_without(*keys: str) -> dict[str, Any]:
    out = {k: v for k, v in USER.items() if k not in keys and k != "password"}
    return out


CASES = [
    pytest.param(None, None, _user_without(), id="default-drops-password-only"),
    pytest.param(
        ["userName"],
        None,
        {"schemas": [CORE_USER], "id": "u1", "userName": "alice"},
        id="attributes-keeps-always-only-extra",
    ),
    pytest.param(
        ["USERNAME", "Name.GivenName"],
        None,
        {"schemas": [CORE_USER], "id": "u1", "userName": "alice", "name": {"givenName": "Alice"}},
        id="case-insensitive-and-sub-attribute",
    ),
    pytest.param(
        ["emails.value"],
        None,
        {"schemas": [CORE_USER], "id": "u1", "emails": [{"value": "a@w"}, {"value": "a@h"}]},
        id="multi-valued-sub-attribute",
    ),
    pytest.param(
        [f"{ENT}:employeeNumber"],
        None,
        {"schemas": [CORE_USER, ENT], "id": "u1", ENT: {"employeeNumber": "42"}},
        id="extension-attribute",
    ),
    pytest.param(
        ["employeeNumber"],
        None,
        {"schemas": [CORE_USER, ENT], "id": "u1", ENT: {"employeeNumber": "42"}},
        id="unqualified-extension-attribute",
    ),
    pytest.param(
        [ENT.lower()],
        None,
        {"schemas": [CORE_USER, ENT], "id": "u1", ENT: USER[ENT]},
        id="whole-extension",
    ),
    pytest.param(
        [f"{ENT}:manager.value", "meta.version"],
        None,
        {
            "schemas": [CORE_USER, ENT],
            "id": "u1",
            ENT: {"manager": {"value": "m1"}},
            "meta": {"version": 'W/"3"'},
        },
        id="extension-sub-and-meta-sub",
    ),
    pytest.param(
        ["password", "id", "nope", "urn:x:y:z"],
        None,
        {"schemas": [CORE_USER], "id": "u1"},
        id="never-is-never-and-unknown-ignored",
    ),
    pytest.param(
        None,
        ["emails", "groups"],
        _user_without("emails", "groups"),
        id="excluded-keeps-meta",
    ),
    pytest.param(
        None,
        [ENT],
        {**_user_without(ENT), "schemas": [CORE_USER]},
        id="excluded-extension-drops-urn-from-schemas",
    ),
    pytest.param(
        None,
        [f"{ENT}:employeeNumber", f"{ENT}:manager"],
        {**_user_without(ENT), "schemas": [CORE_USER]},
        id="extension-emptied-by-exclusion",
    ),
    pytest.param(
        None,
        ["id", "schemas", "name.givenName", "emails.type"],
        {
            **_user_without(),
            "name": {"familyName": "Smith"},
            "emails": [{"value": "a@w", "primary": True}, {"value": "a@h"}],
        },
        id="excluded-id-has-no-effect-subs-removed",
    ),
    pytest.param(
        ["userName", "name"],
        ["name"],
        {"schemas": [CORE_USER], "id": "u1", "userName": "alice"},
        id="both-parameters-applied",
    ),
]


@pytest.mark.parametrize(("attributes", "excluded", "expected"), CASES)
def test_project_user(attributes: Any, excluded: Any, expected: dict[str, Any]) -> None:
    before = copy.deepcopy(USER)
    assert project(USER, USER_RESOURCE, attributes=attributes, excluded=excluded) == expected
    assert before == USER


def test_project_group() -> None:
    assert project(GROUP, GROUP_RESOURCE, attributes=None, excluded=["members"]) == {
        "schemas": [CORE_GROUP],
        "id": "g1",
        "displayName": "Eng",
        "meta": META,
    }
    assert project(GROUP, GROUP_RESOURCE, attributes=["members.value"], excluded=None) == {
        "schemas": [CORE_GROUP],
        "id": "g1",
        "members": [{"value": "u1"}],
    }


def test_empty_lists_mean_no_projection() -> None:
    assert project(GROUP, GROUP_RESOURCE, attributes=[], excluded=[]) == GROUP


@pytest.mark.parametrize(
    ("attr", "attributes", "excluded", "resource", "expected"),
    [
        ("members", None, None, GROUP_RESOURCE, True),
        ("members", None, ["members"], GROUP_RESOURCE, False),
        ("members", None, ["Members"], GROUP_RESOURCE, False),
        ("members", None, ["members.display"], GROUP_RESOURCE, True),
        ("members", ["displayName"], None, GROUP_RESOURCE, False),
        ("members", ["members.value"], None, GROUP_RESOURCE, True),
        ("members", [CORE_GROUP], None, GROUP_RESOURCE, True),
        ("groups", None, None, USER_RESOURCE, True),
        ("groups", ["userName"], None, USER_RESOURCE, False),
        ("groups", None, ["groups"], USER_RESOURCE, False),
        ("members", None, None, USER_RESOURCE, False),
        ("password", None, None, USER_RESOURCE, False),
        ("id", ["userName"], ["id"], USER_RESOURCE, True),
    ],
)
def test_wants(attr: str, attributes: Any, excluded: Any, resource: Any, expected: bool) -> None:
    assert wants(attr, attributes, excluded, resource) is expected
