"""Bulk (RFC 7644 §3.7) and discovery endpoints (§4)."""

from __future__ import annotations

from tests.support.scim_client import Orgs, Scim, user_body

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


def test_bulk_with_bulk_id_references(scim: Scim) -> None:
    r = scim.post(
        "/Bulk",
        {
            "schemas": [BULK],
            "Operations": [
                {
                    "method": "POST",
                    "path": "/Groups",
                    "bulkId": "g1",
                    "data": {"displayName": "bulk-group", "members": [{"value": "bulkId:u1"}]},
                },
                {"method": "POST", "path": "/Users", "bulkId": "u1", "data": user_body("b1@x.io")},
                {
                    "method": "PATCH",
                    "path": "/Users/bulkId:u1",
                    "data": {
                        "Operations": [{"op": "replace", "path": "displayName", "value": "B1"}]
                    },
                },
            ],
        },
    )
    assert r.status_code == 200, r.text
    results = r.json()["Operations"]
    assert [o["status"] for o in results] == ["201", "201", "200"]
    group = scim.get(results[0]["location"].split("/scim/v2")[1]).json()
    user = scim.get(results[1]["location"].split("/scim/v2")[1]).json()
    assert [m["value"] for m in group["members"]] == [user["id"]]
    assert user["displayName"] == "B1"


def test_bulk_fail_on_errors_stops(scim: Scim) -> None:
    r = scim.post(
        "/Bulk",
        {
            "schemas": [BULK],
            "failOnErrors": 1,
            "Operations": [
                {"method": "POST", "path": "/Users", "bulkId": "a", "data": {"name": {}}},
                {"method": "POST", "path": "/Users", "bulkId": "b", "data": user_body("ok@x.io")},
            ],
        },
    )
    assert r.status_code == 200
    ops = r.json()["Operations"]
    assert len(ops) == 1
    assert ops[0]["status"] == "400"
    assert ops[0]["response"]["scimType"] == "invalidValue"
    assert scim.get("/Users").json()["totalResults"] == 0


def test_bulk_limits_are_enforced(scim: Scim) -> None:
    config = scim.get("/ServiceProviderConfig").json()
    limit = config["bulk"]["maxOperations"]
    ops = [{"method": "DELETE", "path": f"/Users/x{i}"} for i in range(limit + 1)]
    r = scim.post("/Bulk", {"schemas": [BULK], "Operations": ops})
    assert r.status_code == 413
    assert r.json()["status"] == "413"


def test_bulk_circular_references_are_409(scim: Scim) -> None:
    r = scim.post(
        "/Bulk",
        {
            "schemas": [BULK],
            "Operations": [
                {
                    "method": "POST",
                    "path": "/Groups",
                    "bulkId": "x",
                    "data": {"displayName": "x", "members": [{"value": "bulkId:y"}]},
                },
                {
                    "method": "POST",
                    "path": "/Groups",
                    "bulkId": "y",
                    "data": {"displayName": "y", "members": [{"value": "bulkId:x"}]},
                },
            ],
        },
    )
    assert r.status_code == 200
    assert [o["status"] for o in r.json()["Operations"]] == ["409", "409"]


def test_service_provider_config_is_truthful(scim: Scim) -> None:
    config = scim.get("/ServiceProviderConfig").json()
    assert config["patch"]["supported"] is True
    assert config["bulk"]["supported"] is True
    assert config["filter"] == {"supported": True, "maxResults": 1000}
    assert config["etag"]["supported"] is True
    assert config["sort"]["supported"] is True
    assert config["changePassword"]["supported"] is False
    assert config["authenticationSchemes"][0]["type"] == "oauthbearertoken"
    # maxResults is enforced
    for i in range(3):
        scim.post("/Users", user_body(f"cap{i}@x.io"))
    assert len(scim.get("/Users", params={"count": 5000}).json()["Resources"]) == 3


def test_resource_types_and_schemas(scim: Scim) -> None:
    types = scim.get("/ResourceTypes").json()
    assert sorted(t["id"] for t in types["Resources"]) == ["Group", "User"]
    user_type = scim.get("/ResourceTypes/User").json()
    assert user_type["schemaExtensions"] == [
        {"schema": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "required": False}
    ]
    schemas = scim.get("/Schemas").json()["Resources"]
    ids = {s["id"] for s in schemas}
    assert "urn:ietf:params:scim:schemas:core:2.0:User" in ids
    user_schema = scim.get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:User").json()
    names = {a["name"]: a for a in user_schema["attributes"]}
    assert names["userName"]["uniqueness"] == "server"
    assert names["userName"]["caseExact"] is False
    assert names["password"]["returned"] == "never"
    assert names["groups"]["mutability"] == "readOnly"
    assert scim.get("/Schemas/urn:nope").status_code == 404


def test_discovery_needs_a_token(orgs: Orgs) -> None:
    assert orgs.a.client.get("/scim/v2/ServiceProviderConfig").status_code == 401
