"""Replays of JumpCloud, OneLogin and Google behaviours."""

from __future__ import annotations

from tests.support.scim_client import Scim, group_body, user_body

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def test_jumpcloud_activation_probe_creates_and_deletes_test_objects(scim: Scim) -> None:
    user = scim.post("/Users", user_body("jctest-user@jumpcloud.test", externalId="jc-1"))
    assert user.status_code == 201, user.text
    group = scim.post("/Groups", group_body("jctest-group", [user.json()["id"]]))
    assert group.status_code == 201, group.text
    assert scim.delete(f"/Groups/{group.json()['id']}").status_code == 204
    assert scim.delete(f"/Users/{user.json()['id']}").status_code == 204
    assert scim.get("/Users").json()["totalResults"] == 0
    assert scim.get("/Groups").json()["totalResults"] == 0


def test_onelogin_membership_patches(scim: Scim) -> None:
    u1 = scim.post("/Users", user_body("ol1@onelogin.test")).json()["id"]
    u2 = scim.post("/Users", user_body("ol2@onelogin.test")).json()["id"]
    gid = scim.post("/Groups", group_body("ol-group")).json()["id"]
    for op, uid in (("add", u1), ("add", u2), ("remove", u1)):
        r = scim.patch(
            f"/Groups/{gid}",
            {
                "schemas": [PATCH],
                "Operations": [{"op": op, "path": "members", "value": [{"value": uid}]}],
            },
        )
        assert r.status_code in (200, 204), r.text
    assert [m["value"] for m in scim.get(f"/Groups/{gid}").json()["members"]] == [u2]


def test_google_probe_count_one(scim: Scim) -> None:
    for i in range(3):
        scim.post("/Users", user_body(f"g{i}@google.test"))
    r = scim.get("/Users", params={"count": 1})
    assert r.status_code == 200
    assert r.json()["totalResults"] == 3
    assert len(r.json()["Resources"]) == 1
    assert r.json()["itemsPerPage"] == 1
