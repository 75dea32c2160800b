"""PATCH vectors replayed over HTTP against idsync and the reference server.

Issue 10 found data loss by replaying other SCIM libraries' PATCH test vectors; here the
same kind of vectors run against idsync (both backends) and, in process, against
scim2-server (the python-scim project's reference implementation): after each PATCH
both must hold the same user. The few places where idsync deliberately answers
otherwise are asserted on their own below, with the reason (docs/scim.md, PATCH).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from scim2_models import ScimProvider
from scim2_server.memory import InMemoryStorage
from scim2_server.testserver.application import BearerTokenApplication
from scim2_server.utils import (
    load_default_resource_types,
    load_default_schemas,
    load_default_service_provider_config,
)

from tests.support.scim_client import Scim

ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _user(user_name: str) -> dict[str, Any]:
    return {
        "schemas": [CORE, ENT],
        "userName": user_name,
        "displayName": "Alice Smith",
        "title": "Engineer",
        "name": {"givenName": "Alice", "familyName": "Smith", "middleName": "Q"},
        "emails": [
            {"value": "a@work.example", "type": "work", "primary": True},
            {"value": "a2@work.example", "type": "work", "display": "second"},
            {"value": "a@home.example", "type": "home"},
        ],
        "phoneNumbers": [{"value": "+1 555 0100", "type": "mobile"}],
        ENT: {"employeeNumber": "42", "department": "R&D", "manager": {"value": "mgr-1"}},
    }


def _op(op: str, path: str | None = None, value: Any = None, *, no_value: bool = False) -> Any:
    out: dict[str, Any] = {"op": op}
    if path is not None:
        out["path"] = path
    if not no_value:
        out["value"] = value
    return out


WORK = 'emails[type eq "work"]'
VECTORS = [
    # issue 10 #14: filtered replace without a sub-attribute, several matches
    pytest.param([_op("replace", WORK, {"display": "Work"})], id="replace-filtered-merge"),
    pytest.param([_op("add", WORK, {"display": "Work"})], id="add-filtered-merge"),
    pytest.param(
        [_op("replace", 'emails[value eq "a2@work.example"]', {"value": "b@work.example"})],
        id="replace-filtered-value-keeps-others",
    ),
    pytest.param([_op("replace", WORK, {})], id="replace-filtered-empty-object"),
    # issue 10 #15: {} merges nothing
    pytest.param([_op("replace", "name", {})], id="replace-name-empty-object"),
    pytest.param([_op("add", "name", {})], id="add-name-empty-object"),
    pytest.param([_op("replace", None, {"name": {}})], id="no-path-name-empty-object"),
    pytest.param([_op("replace", f"{ENT}:manager", {})], id="replace-manager-empty-object"),
    # issue 10 #16: remove a sub-attribute of the matching values only
    pytest.param(
        [_op("remove", "emails[primary eq true].value", no_value=True)],
        id="remove-primary-email-value",
    ),
    pytest.param([_op("remove", "emails.value", no_value=True)], id="remove-every-email-value"),
    pytest.param([_op("remove", f"{WORK}.display", no_value=True)], id="remove-filtered-display"),
    pytest.param([_op("replace", f"{WORK}.value", None)], id="replace-filtered-value-null"),
    # the broader set
    pytest.param([_op("replace", f"{WORK}.value", "w@x.example")], id="replace-filtered-sub"),
    pytest.param([_op("replace", "name", {"givenName": "Ali"})], id="replace-complex-merges"),
    pytest.param([_op("add", "name.honorificPrefix", "Dr")], id="add-sub-attribute"),
    pytest.param([_op("remove", "name.middleName", no_value=True)], id="remove-sub-attribute"),
    pytest.param([_op("remove", "name", no_value=True)], id="remove-complex"),
    pytest.param([_op("remove", "title", no_value=True)], id="remove-simple"),
    pytest.param([_op("replace", "title", "Lead")], id="replace-simple"),
    pytest.param([_op("add", "nickName", "Ally")], id="add-simple"),
    pytest.param([_op("replace", None, {"title": "Lead", "nickName": "Al"})], id="no-path"),
    pytest.param([_op("replace", None, {"name.givenName": "Ali"})], id="no-path-dotted"),
    pytest.param(
        [_op("replace", None, {ENT: {"department": "Ops"}})], id="no-path-extension-merges"
    ),
    pytest.param([_op("replace", f"{ENT}:department", "Ops")], id="urn-path"),
    pytest.param([_op("remove", f"{ENT}:manager", no_value=True)], id="remove-manager"),
    pytest.param([_op("replace", f"{ENT}:manager.value", "mgr-2")], id="manager-value"),
    pytest.param([_op("remove", 'emails[type eq "home"]', no_value=True)], id="remove-filtered"),
    pytest.param(
        [_op("remove", 'emails[type eq "work" and value eq "a2@work.example"]', no_value=True)],
        id="remove-filtered-and",
    ),
    pytest.param([_op("remove", "emails", no_value=True)], id="remove-multi-valued"),
    pytest.param(
        [_op("add", "emails", [{"value": "new@x.example", "type": "other"}])], id="add-append"
    ),
    pytest.param(
        [_op("replace", "emails", [{"value": "only@x.example", "type": "work"}])],
        id="replace-multi-valued",
    ),
    pytest.param(
        [_op("add", "phoneNumbers", [{"value": "+1 555 0199", "type": "work"}])],
        id="add-phone",
    ),
    pytest.param(
        [_op("replace", 'phoneNumbers[type eq "mobile"].value', "+1 555 0101")],
        id="replace-phone",
    ),
    pytest.param([_op("replace", "emails", [])], id="replace-multi-valued-empty-list"),
    pytest.param([_op("replace", "name", None)], id="replace-complex-null"),
    pytest.param(
        [
            _op("replace", "title", "Lead"),
            _op("remove", "emails[primary eq true].value", no_value=True),
            _op("replace", WORK, {"display": "Work"}),
        ],
        id="several-operations",
    ),
]


@pytest.fixture(scope="module")
def reference() -> Iterator[httpx.Client]:
    """scim2-server, in memory and in process (no token: it accepts every request)."""
    provider = ScimProvider.from_discovery(
        load_default_schemas().values(),
        load_default_resource_types().values(),
        config=load_default_service_provider_config(),
    )
    app = BearerTokenApplication(InMemoryStorage(), provider)
    transport = httpx.WSGITransport(app=app)
    with httpx.Client(transport=transport, base_url="http://reference.test/v2") as client:
        yield client


def _comparable(resource: dict[str, Any]) -> dict[str, Any]:
    """A user representation without what each server assigns itself (idsync also
    renders the manager's `$ref`)."""
    out = {k: v for k, v in resource.items() if k not in ("id", "meta", "schemas", "groups")}
    manager = out.get(ENT, {}).get("manager")
    if isinstance(manager, dict) and "$ref" in manager:
        out[ENT] = {**out[ENT], "manager": {k: v for k, v in manager.items() if k != "$ref"}}
    return out


def _after_reference(client: httpx.Client, user_name: str, ops: list[Any]) -> dict[str, Any]:
    created = client.post("/Users", json=_user(user_name))
    assert created.status_code == 201, created.text
    uid = created.json()["id"]
    patched = client.patch(f"/Users/{uid}", json={"schemas": [PATCH_OP], "Operations": ops})
    assert patched.status_code in (200, 204), patched.text
    return _comparable(client.get(f"/Users/{uid}").json())


def _after_idsync(scim: Scim, user_name: str, ops: list[Any]) -> dict[str, Any]:
    created = scim.post("/Users", _user(user_name))
    assert created.status_code == 201, created.text
    uid = created.json()["id"]
    patched = scim.patch(f"/Users/{uid}", scim.ops(*ops))
    assert patched.status_code == 200, patched.text
    current = scim.get(f"/Users/{uid}").json()
    assert _comparable(patched.json()) == _comparable(current)
    return _comparable(current)


def _without_default_active(resource: dict[str, Any]) -> dict[str, Any]:
    """idsync stores `active: true` for a user created without it (docs/scim.md)."""
    return {k: v for k, v in resource.items() if not (k == "active" and v is True)}


@pytest.mark.parametrize("ops", VECTORS)
def test_patch_vector_gives_what_the_reference_server_gives(
    scim: Scim, reference: httpx.Client, ops: list[Any], request: pytest.FixtureRequest
) -> None:
    user_name = f"{request.node.callspec.id}@vectors.example".replace("[", "-").replace("]", "")
    expected = _after_reference(reference, user_name, ops)
    assert _without_default_active(_after_idsync(scim, user_name, ops)) == expected


# --- where idsync deliberately answers otherwise ----------------------------------------


@pytest.mark.parametrize(
    "op",
    [
        pytest.param(_op("replace", "emails", {}), id="replace-multi-valued-with-object"),
        pytest.param(_op("replace", "title", {}), id="simple-attribute"),
        pytest.param(_op("replace", f"{WORK}.value", {}), id="filtered-sub-attribute"),
    ],
)
def test_empty_object_where_no_merge_is_possible_is_400_and_changes_nothing(
    scim: Scim, op: dict[str, Any]
) -> None:
    """scim2-server clears every email for `replace emails {}` (and refuses `{}` for a
    string, as idsync does); idsync refuses rather than guess at a clear."""
    created = scim.post("/Users", _user("empty-object@vectors.example")).json()
    response = scim.patch(f"/Users/{created['id']}", scim.ops(op))
    assert response.status_code == 400
    assert response.json()["scimType"] == "invalidValue"
    after = scim.get(f"/Users/{created['id']}").json()
    assert after["meta"]["version"] == created["meta"]["version"]
    assert _comparable(after) == _comparable(created)


def test_group_members_replace_with_empty_object_is_400_and_keeps_members(scim: Scim) -> None:
    uid = scim.post("/Users", _user("member@vectors.example")).json()["id"]
    group = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "g"}
    gid = scim.post("/Groups", {**group, "members": [{"value": uid}]}).json()["id"]
    response = scim.patch(f"/Groups/{gid}", scim.ops(_op("replace", "members", {})))
    assert response.status_code == 400
    assert response.json()["scimType"] == "invalidValue"
    assert [m["value"] for m in scim.get(f"/Groups/{gid}").json()["members"]] == [uid]
