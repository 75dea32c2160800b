"""Replays of what Microsoft Entra ID sends (Entra SCIM provisioning)."""

from __future__ import annotations

from tests.support.scim_client import Scim

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def entra_user(upn: str, external_id: str) -> dict[str, object]:
    return {
        "schemas": [USER, ENTERPRISE],
        "externalId": external_id,
        "userName": upn,
        "active": True,
        "displayName": "Test User",
        "emails": [{"primary": True, "type": "work", "value": upn}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "Test User", "familyName": "User", "givenName": "Test"},
        "roles": [],
        ENTERPRISE: {"employeeNumber": "100", "department": "Finance"},
    }


def test_entra_lookups_by_external_id_and_work_email(scim: Scim) -> None:
    scim.post("/Users", entra_user("test.user@contoso.com", "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"))
    by_ext = scim.get(
        "/Users", params={"filter": 'externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"'}
    ).json()
    assert by_ext["totalResults"] == 1
    by_mail = scim.get(
        "/Users", params={"filter": 'emails[type eq "work"].value eq "test.user@contoso.com"'}
    ).json()
    assert by_mail["totalResults"] == 1
    miss = scim.get("/Users", params={"filter": 'userName eq "non-existent user"'}).json()
    assert miss["totalResults"] == 0


def test_entra_patch_shapes(scim: Scim) -> None:
    uid = scim.post("/Users", entra_user("pat@contoso.com", "ext-pat")).json()["id"]
    mgr = scim.post("/Users", entra_user("boss@contoso.com", "ext-boss")).json()["id"]
    r = scim.patch(
        f"/Users/{uid}",
        {
            "schemas": [PATCH],
            "Operations": [
                {"op": "Replace", "path": "active", "value": "False"},
                {"op": "Add", "path": 'emails[type eq "work"].value', "value": "pat2@contoso.com"},
                {
                    "op": "Replace",
                    "value": {
                        "name.givenName": "Patricia",
                        f"{ENTERPRISE}:employeeNumber": "200",
                        "UserName": "pat@contoso.com",
                    },
                },
                {"op": "Add", "path": f"{ENTERPRISE}:manager", "value": mgr},
            ],
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["active"] is False
    assert body["name"]["givenName"] == "Patricia"
    assert body[ENTERPRISE]["employeeNumber"] == "200"
    assert body[ENTERPRISE]["manager"]["value"] == mgr
    work = [e for e in body["emails"] if e.get("type") == "work"]
    assert [e["value"] for e in work] == ["pat2@contoso.com"]


def test_entra_replace_missing_work_email_creates_it(scim: Scim) -> None:
    body = entra_user("nomail@contoso.com", "ext-nomail")
    del body["emails"]
    uid = scim.post("/Users", body).json()["id"]
    r = scim.patch(
        f"/Users/{uid}",
        {
            "schemas": [PATCH],
            "Operations": [
                {
                    "op": "Replace",
                    "path": 'emails[type eq "work"].value',
                    "value": "new@contoso.com",
                }
            ],
        },
    )
    assert r.status_code == 200, r.text
    assert [e["value"] for e in r.json()["emails"] if e.get("type") == "work"] == [
        "new@contoso.com"
    ]


def test_entra_capitalised_attribute_names_on_create(scim: Scim) -> None:
    r = scim.post(
        "/Users",
        {"schemas": [USER], "UserName": "caps@contoso.com", "Active": "True", "externalId": "c"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["userName"] == "caps@contoso.com"
    assert r.json()["active"] is True


def test_entra_empty_strings_and_nulls_clear(scim: Scim) -> None:
    uid = scim.post("/Users", entra_user("clear@contoso.com", "ext-clear")).json()["id"]
    r = scim.patch(
        f"/Users/{uid}",
        {
            "schemas": [PATCH],
            "Operations": [
                {"op": "Replace", "path": "displayName", "value": ""},
                {"op": "Replace", "path": f"{ENTERPRISE}:department", "value": None},
            ],
        },
    )
    assert r.status_code == 200, r.text
    assert "displayName" not in r.json()
    assert "department" not in r.json().get(ENTERPRISE, {})


def test_entra_group_membership(scim: Scim) -> None:
    users = [
        scim.post("/Users", entra_user(f"m{i}@contoso.com", f"ext-m{i}")).json()["id"]
        for i in range(4)
    ]
    created = scim.post(
        "/Groups",
        {
            "schemas": [GROUP],
            "externalId": "8aa1a0c0",
            "displayName": "Group1DisplayName",
            "meta": {"resourceType": "Group"},
        },
    )
    assert created.status_code == 201, created.text
    gid = created.json()["id"]
    lookup = scim.get(
        "/Groups",
        params={"filter": 'displayName eq "Group1DisplayName"', "excludedAttributes": "members"},
    ).json()
    assert lookup["totalResults"] == 1 and "members" not in lookup["Resources"][0]

    add = scim.patch(
        f"/Groups/{gid}",
        {
            "schemas": [PATCH],
            "Operations": [
                {"op": "Add", "path": "members", "value": [{"value": u} for u in users]}
            ],
        },
    )
    assert add.status_code in (200, 204), add.text
    # Remove with path "members" and a value list removes exactly those members.
    remove = scim.patch(
        f"/Groups/{gid}",
        {
            "schemas": [PATCH],
            "Operations": [
                {
                    "op": "Remove",
                    "path": "members",
                    "value": [{"value": users[0]}, {"value": users[2]}],
                }
            ],
        },
    )
    assert remove.status_code in (200, 204), remove.text
    left = sorted(m["value"] for m in scim.get(f"/Groups/{gid}").json()["members"])
    assert left == sorted([users[1], users[3]])

    rename = scim.patch(
        f"/Groups/{gid}",
        {
            "schemas": [PATCH],
            "Operations": [{"op": "Replace", "path": "displayName", "value": "Group1 renamed"}],
        },
    )
    assert rename.status_code in (200, 204)
    assert (
        scim.get(f"/Groups/{gid}", params={"excludedAttributes": "members"}).json()["displayName"]
        == "Group1 renamed"
    )


def test_entra_inactive_users_are_still_returned(scim: Scim) -> None:
    body = entra_user("off@contoso.com", "ext-off")
    body["active"] = False
    uid = scim.post("/Users", body).json()["id"]
    got = scim.get(f"/Users/{uid}")
    assert got.status_code == 200 and got.json()["active"] is False
    listed = scim.get("/Users", params={"filter": 'userName eq "off@contoso.com"'}).json()
    assert listed["totalResults"] == 1
