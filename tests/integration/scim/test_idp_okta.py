"""Replays of what Okta sends (Okta SCIM 2.0 provisioning, as documented by Okta)."""

from __future__ import annotations

from tests.support.scim_client import Scim

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def okta_user(login: str, first: str = "John", last: str = "Doe") -> dict[str, object]:
    return {
        "schemas": [USER],
        "userName": login,
        "name": {"givenName": first, "familyName": last},
        "emails": [{"primary": True, "value": login, "type": "work"}],
        "displayName": f"{first} {last}",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": "1mz050nq",
        "active": True,
    }


def test_okta_lookup_then_create_then_duplicate(scim: Scim) -> None:
    lookup = scim.get(
        "/Users",
        params={"filter": 'userName eq "john.doe@example.com"', "startIndex": 1, "count": 100},
    )
    assert lookup.status_code == 200
    assert lookup.json()["totalResults"] == 0
    assert lookup.json()["Resources"] == []

    created = scim.post("/Users", okta_user("john.doe@example.com"))
    assert created.status_code == 201, created.text
    body = created.json()
    assert "password" not in body
    assert body["active"] is True

    found = scim.get(
        "/Users",
        params={"filter": 'userName eq "john.doe@example.com"', "startIndex": 1, "count": 100},
    ).json()
    assert found["totalResults"] == 1
    assert found["Resources"][0]["id"] == body["id"]

    dup = scim.post("/Users", okta_user("john.doe@example.com"))
    assert dup.status_code == 409
    assert dup.json()["scimType"] == "uniqueness"


def test_okta_profile_update_by_full_put(scim: Scim) -> None:
    created = scim.post("/Users", okta_user("jane@example.com", "Jane")).json()
    # Okta PUTs back the full resource it read, id/meta/groups included.
    full = dict(created)
    full["name"] = {"givenName": "Janet", "familyName": "Doe"}
    full["displayName"] = "Janet Doe"
    full["password"] = "ignored"
    updated = scim.put(f"/Users/{created['id']}", full)
    assert updated.status_code == 200, updated.text
    assert updated.json()["name"]["givenName"] == "Janet"
    assert updated.json()["id"] == created["id"]
    assert updated.json()["meta"]["created"] == created["meta"]["created"]


def test_okta_deactivate_with_no_path_replace(scim: Scim) -> None:
    uid = scim.post("/Users", okta_user("leaver@example.com")).json()["id"]
    r = scim.patch(
        f"/Users/{uid}",
        {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["active"] is False
    still_there = scim.get("/Users", params={"filter": 'userName eq "leaver@example.com"'})
    assert still_there.json()["Resources"][0]["active"] is False


def test_okta_group_push(scim: Scim) -> None:
    u1 = scim.post("/Users", okta_user("a@example.com")).json()["id"]
    u2 = scim.post("/Users", okta_user("b@example.com")).json()["id"]
    u3 = scim.post("/Users", okta_user("c@example.com")).json()["id"]
    created = scim.post(
        "/Groups", {"schemas": [GROUP], "displayName": "Test SCIMv2", "members": []}
    )
    assert created.status_code == 201, created.text
    gid = created.json()["id"]

    # rename: no-path replace whose value holds id and displayName
    rename = scim.patch(
        f"/Groups/{gid}",
        {
            "schemas": [PATCH],
            "Operations": [
                {"op": "replace", "value": {"id": gid, "displayName": "Test SCIMv2 renamed"}}
            ],
        },
    )
    assert rename.status_code in (200, 204), rename.text
    assert scim.get(f"/Groups/{gid}").json()["displayName"] == "Test SCIMv2 renamed"

    # add members
    add = scim.patch(
        f"/Groups/{gid}",
        {
            "schemas": [PATCH],
            "Operations": [
                {
                    "op": "add",
                    "path": "members",
                    "value": [{"value": u1, "display": "a@example.com"}, {"value": u2}],
                }
            ],
        },
    )
    assert add.status_code in (200, 204), add.text

    # remove one by value filter
    remove = scim.patch(
        f"/Groups/{gid}",
        {
            "schemas": [PATCH],
            "Operations": [{"op": "remove", "path": f'members[value eq "{u1}"]'}],
        },
    )
    assert remove.status_code in (200, 204), remove.text
    assert [m["value"] for m in scim.get(f"/Groups/{gid}").json()["members"]] == [u2]

    # full replace of members
    replace = scim.patch(
        f"/Groups/{gid}",
        {
            "schemas": [PATCH],
            "Operations": [
                {"op": "replace", "path": "members", "value": [{"value": u3}, {"value": u1}]}
            ],
        },
    )
    assert replace.status_code in (200, 204), replace.text
    members = sorted(m["value"] for m in scim.get(f"/Groups/{gid}").json()["members"])
    assert members == sorted([u1, u3])

    dup = scim.post(
        "/Groups", {"schemas": [GROUP], "displayName": "test scimv2 RENAMED", "members": []}
    )
    assert dup.status_code == 409


def test_okta_bad_token_is_401_with_scim_body(scim: Scim) -> None:
    r = scim.client.get(
        "/scim/v2/Users",
        params={"filter": 'userName eq "x"', "startIndex": 1, "count": 100},
        headers={"Authorization": "Bearer not-a-real-token"},
    )
    assert r.status_code == 401
    assert r.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert r.json()["status"] == "401"
