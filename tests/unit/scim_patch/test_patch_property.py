"""Property: apply_patch only ever raises ScimError, never mutates its input, and its
member deltas keep their documented invariants."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scim.errors import ScimError
from scim.patch import apply_patch
from scim.schemas import ENTERPRISE_USER, GROUP_RESOURCE, USER_RESOURCE, ResourceType

USER: dict[str, Any] = {
    "userName": "alice@example.com",
    "name": {"givenName": "Alice"},
    "active": True,
    "emails": [
        {"value": "a@w", "type": "work", "primary": True},
        {"value": "a@h", "type": "home"},
    ],
    ENTERPRISE_USER: {"employeeNumber": "1", "manager": {"value": "m"}},
}
GROUP: dict[str, Any] = {"displayName": "G"}

PATHS = [
    "userName",
    "UserName",
    "active",
    "title",
    "name",
    "name.givenName",
    "name.nope",
    "emails",
    "emails.value",
    "emails.primary",
    'emails[type eq "work"]',
    'emails[type eq "work"].value',
    'emails[type eq "other"].value',
    'emails[value co "a"].primary',
    'emails[not (type eq "work")]',
    "emails[type pr or primary eq true].display",
    'addresses[type eq "work" and country eq "DE"].locality',
    'addresses[formatted gt "a"]',
    "members",
    'members[value eq "u1"]',
    'members[value eq "u1" or value eq "u2"]',
    'members[display eq "x"]',
    "members.value",
    "displayName",
    "externalId",
    "id",
    "meta",
    "meta.version",
    "groups",
    "password",
    f"{ENTERPRISE_USER}:employeeNumber",
    f"{ENTERPRISE_USER}:manager",
    f"{ENTERPRISE_USER}:manager.value",
    f"{ENTERPRISE_USER}:manager.displayName",
    ENTERPRISE_USER,
    "urn:x:y",
    "emails[",
    "",
    "][",
    'emails[type eq "work"].value eq "x"',
]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "x", "True", "false", "work", "u1", "2024-01-01T00:00:00Z"]),
    st.text(max_size=5),
)
keys = st.one_of(
    st.sampled_from(
        [
            "value",
            "type",
            "primary",
            "display",
            "givenName",
            "userName",
            "active",
            "emails",
            "members",
            "name",
            "name.givenName",
            "id",
            "schemas",
            "meta",
            "password",
            "displayName",
            ENTERPRISE_USER,
            f"{ENTERPRISE_USER}:manager",
            "urn:x:y:z",
        ]
    ),
    st.text(max_size=4),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(keys, children, max_size=3)
    ),
    max_leaves=8,
)
ops = st.dictionaries(
    st.sampled_from(["op", "Op", "path", "value", "extra"]),
    st.one_of(
        st.sampled_from(["add", "Add", "remove", "Remove", "replace", "REPLACE", "move"]),
        st.sampled_from(PATHS),
        json_values,
    ),
    max_size=4,
)
well_formed_ops = st.fixed_dictionaries(
    {
        "op": st.sampled_from(["add", "Add", "remove", "Remove", "replace", "Replace"]),
        "path": st.sampled_from(PATHS),
    },
    optional={"value": json_values},
)
op_lists = st.lists(st.one_of(well_formed_ops, well_formed_ops, ops, json_values), max_size=4)


def _check(doc: dict[str, Any], operations: Any, resource: ResourceType) -> None:
    before = copy.deepcopy(doc)
    try:
        result = apply_patch(doc, operations, resource, resource_id="r1")
    except ScimError:
        assert doc == before
        return
    assert doc == before
    assert result.changed is (result.document != before)
    assert not set(result.members_add) & set(result.members_remove)
    if result.members_replace is not None:
        assert not result.members_add and not result.members_remove
        assert not result.members_remove_all
    if result.members_remove_all:
        assert not result.members_remove
    assert "members" not in result.document
    for value in result.document.values():
        if isinstance(value, list):
            assert sum(1 for e in value if isinstance(e, dict) and e.get("primary") is True) <= 1


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=op_lists)
def test_user_patch_only_raises_scim_errors(operations: Any) -> None:
    _check(USER, operations, USER_RESOURCE)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=op_lists)
def test_group_patch_only_raises_scim_errors(operations: Any) -> None:
    _check(GROUP, operations, GROUP_RESOURCE)


@settings(max_examples=200, deadline=None)
@given(body=json_values)
def test_arbitrary_body_only_raises_scim_errors(body: Any) -> None:
    _check(USER, body, USER_RESOURCE)
