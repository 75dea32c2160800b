"""Users and Groups: the basic lifecycle, ETags, projection, paging, isolation."""

from __future__ import annotations

from tests.support.scim_client import Orgs, Scim, group_body, user_body
from tests.support.statements import executed_statements

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def test_user_lifecycle(scim: Scim) -> None:
    created = scim.post("/Users", user_body("ada@example.com", externalId="ext-1"))
    assert created.status_code == 201, created.text
    assert created.headers["content-type"].startswith("application/scim+json")
    user = created.json()
    assert user["userName"] == "ada@example.com"
    assert user["meta"]["resourceType"] == "User"
    assert user["meta"]["version"] == created.headers["etag"] == 'W/"1"'
    assert created.headers["location"] == user["meta"]["location"]
    assert user["meta"]["location"].endswith(f"/scim/v2/Users/{user['id']}")
    assert "password" not in user

    got = scim.get(f"/Users/{user['id']}")
    assert got.status_code == 200
    assert got.json()["emails"][0]["value"] == "ada@example.com"

    put = scim.put(
        f"/Users/{user['id']}",
        user_body("ada@example.com", displayName="Ada L.", externalId="ext-1"),
    )
    assert put.status_code == 200, put.text
    assert put.json()["displayName"] == "Ada L."
    assert put.json()["meta"]["version"] == 'W/"2"'

    gone = scim.delete(f"/Users/{user['id']}")
    assert gone.status_code == 204
    assert scim.get(f"/Users/{user['id']}").status_code == 404


def test_user_name_unique_case_insensitively(scim: Scim) -> None:
    assert scim.post("/Users", user_body("Bob@Example.com")).status_code == 201
    dup = scim.post("/Users", user_body("bob@example.COM"))
    assert dup.status_code == 409
    assert dup.json()["scimType"] == "uniqueness"
    assert dup.json()["status"] == "409"


def test_group_display_name_unique_case_insensitively(scim: Scim) -> None:
    assert scim.post("/Groups", group_body("Engineering")).status_code == 201
    dup = scim.post("/Groups", group_body("engineering"))
    assert dup.status_code == 409
    assert dup.json()["scimType"] == "uniqueness"


def test_group_members_and_user_groups(scim: Scim) -> None:
    u1 = scim.post("/Users", user_body("u1@x.io")).json()["id"]
    u2 = scim.post("/Users", user_body("u2@x.io")).json()["id"]
    group = scim.post("/Groups", group_body("Ops", [u1, u2]))
    assert group.status_code == 201, group.text
    gid = group.json()["id"]
    assert sorted(m["value"] for m in group.json()["members"]) == sorted([u1, u2])
    user = scim.get(f"/Users/{u1}").json()
    assert [g["value"] for g in user["groups"]] == [gid]
    assert user["groups"][0]["display"] == "Ops"

    slim = scim.get(f"/Groups/{gid}", params={"excludedAttributes": "members"})
    assert slim.status_code == 200
    assert "members" not in slim.json()
    assert slim.json()["displayName"] == "Ops"

    assert scim.delete(f"/Users/{u2}").status_code == 204
    members = scim.get(f"/Groups/{gid}").json()["members"]
    assert [m["value"] for m in members] == [u1]


def test_user_groups_is_read_only_and_ignored_on_input(scim: Scim) -> None:
    gid = scim.post("/Groups", group_body("Sales")).json()["id"]
    created = scim.post("/Users", user_body("c@x.io", groups=[{"value": gid}]))
    assert created.status_code == 201, created.text
    assert "groups" not in created.json()


def test_etags(scim: Scim) -> None:
    created = scim.post("/Users", user_body("e@x.io"))
    uid, tag = created.json()["id"], created.headers["etag"]
    not_modified = scim.get(f"/Users/{uid}", headers={"If-None-Match": tag})
    assert not_modified.status_code == 304
    stale = scim.put(f"/Users/{uid}", user_body("e@x.io"), headers={"If-Match": 'W/"99"'})
    assert stale.status_code == 412
    assert stale.json()["status"] == "412"
    ok = scim.patch(
        f"/Users/{uid}",
        scim.ops({"op": "replace", "path": "displayName", "value": "E"}),
        headers={"If-Match": tag},
    )
    assert ok.status_code == 200, ok.text
    assert ok.headers["etag"] == 'W/"2"'
    assert scim.delete(f"/Users/{uid}", headers={"If-Match": tag}).status_code == 412
    assert scim.delete(f"/Users/{uid}", headers={"If-Match": 'W/"2"'}).status_code == 204


def test_attributes_and_excluded_attributes(scim: Scim) -> None:
    body = user_body("p@x.io")
    body["schemas"].append(ENTERPRISE)
    body[ENTERPRISE] = {"employeeNumber": "42", "department": "R&D"}
    uid = scim.post("/Users", body).json()["id"]
    only = scim.get(f"/Users/{uid}", params={"attributes": "userName,name.givenName"}).json()
    assert only["userName"] == "p@x.io"
    assert only["name"] == {"givenName": "Ada"}
    assert "emails" not in only and "meta" not in only
    assert only["id"] == uid  # returned: always
    ext = scim.get(f"/Users/{uid}", params={"attributes": f"{ENTERPRISE}:employeeNumber"}).json()
    assert ext[ENTERPRISE] == {"employeeNumber": "42"}
    without = scim.get(f"/Users/{uid}", params={"excludedAttributes": "emails,name"}).json()
    assert "emails" not in without and "name" not in without
    assert without["userName"] == "p@x.io"


def test_pagination_is_stable_and_bounded(scim: Scim) -> None:
    ids = [scim.post("/Users", user_body(f"user{i:02d}@x.io")).json()["id"] for i in range(7)]
    first = scim.get("/Users", params={"startIndex": 1, "count": 3}).json()
    second = scim.get("/Users", params={"startIndex": 4, "count": 3}).json()
    third = scim.get("/Users", params={"startIndex": 7, "count": 3}).json()
    assert first["totalResults"] == 7
    assert first["itemsPerPage"] == 3 and first["startIndex"] == 1
    seen = [r["id"] for page in (first, second, third) for r in page["Resources"]]
    assert sorted(seen) == sorted(ids) and len(seen) == 7
    zero = scim.get("/Users", params={"count": 0}).json()
    assert zero["totalResults"] == 7 and zero["Resources"] == []
    by_name = scim.get("/Users", params={"sortBy": "userName", "sortOrder": "descending"}).json()
    names = [r["userName"] for r in by_name["Resources"]]
    assert names == sorted(names, reverse=True)


def test_filter_lookup(scim: Scim) -> None:
    scim.post("/Users", user_body("find.me@x.io", externalId="okta-123"))
    scim.post("/Users", user_body("other@x.io"))
    res = scim.get("/Users", params={"filter": 'userName eq "FIND.ME@x.io"'}).json()
    assert [r["userName"] for r in res["Resources"]] == ["find.me@x.io"]
    res = scim.get("/Users", params={"filter": 'externalId eq "okta-123"'}).json()
    assert res["totalResults"] == 1
    bad = scim.get("/Users", params={"filter": "userName eq"})
    assert bad.status_code == 400
    assert bad.json()["scimType"] == "invalidFilter"


def test_search_endpoints(scim: Scim) -> None:
    scim.post("/Users", user_body("s1@x.io"))
    scim.post("/Groups", group_body("s-group"))
    res = scim.post(
        "/Users/.search",
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": 'userName sw "s1"',
            "attributes": ["userName"],
        },
    )
    assert res.status_code == 200, res.text
    assert [r["userName"] for r in res.json()["Resources"]] == ["s1@x.io"]
    root = scim.post(
        "/.search",
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": "meta.created pr",
        },
    )
    assert root.status_code == 200, root.text
    types = sorted(r["meta"]["resourceType"] for r in root.json()["Resources"])
    assert types == ["Group", "User"]


def test_organizations_are_isolated(orgs: Orgs) -> None:
    uid = orgs.a.post("/Users", user_body("secret@acme.io")).json()["id"]
    gid = orgs.a.post("/Groups", group_body("acme-admins", [uid])).json()["id"]
    assert orgs.b.get(f"/Users/{uid}").status_code == 404
    assert orgs.b.get(f"/Groups/{gid}").status_code == 404
    assert orgs.b.get("/Users").json()["totalResults"] == 0
    hits = orgs.b.get("/Users", params={"filter": 'userName eq "secret@acme.io"'}).json()
    assert hits["totalResults"] == 0
    assert orgs.b.put(f"/Users/{uid}", user_body("stolen@globex.io")).status_code == 404
    assert (
        orgs.b.patch(f"/Groups/{gid}", orgs.b.ops({"op": "remove", "path": "members"})).status_code
        == 404
    )
    assert orgs.b.delete(f"/Users/{uid}").status_code == 404
    # org B may not add org A's user to its own group, nor reuse a name across orgs wrongly
    other = orgs.b.post("/Groups", group_body("globex-admins", [uid]))
    assert other.status_code == 400
    assert other.json()["scimType"] == "invalidValue"
    assert orgs.b.post("/Users", user_body("secret@acme.io")).status_code == 201
    assert orgs.a.get(f"/Users/{uid}").json()["userName"] == "secret@acme.io"
    assert [m["value"] for m in orgs.a.get(f"/Groups/{gid}").json()["members"]] == [uid]


def test_renames_onto_a_taken_name_are_409_and_change_nothing(orgs: Orgs) -> None:
    scim = orgs.a
    scim.post("/Users", user_body("taken@x.io"))
    uid = scim.post("/Users", user_body("mover@x.io")).json()["id"]
    scim.post("/Groups", group_body("Taken"))
    gid = scim.post("/Groups", group_body("Mover")).json()["id"]
    before = orgs.change_count()
    put = scim.put(f"/Users/{uid}", user_body("TAKEN@x.io"))
    assert put.status_code == 409 and put.json()["scimType"] == "uniqueness"
    patch = scim.patch(
        f"/Groups/{gid}", scim.ops({"op": "replace", "path": "displayName", "value": "taken"})
    )
    assert patch.status_code == 409 and patch.json()["scimType"] == "uniqueness"
    assert scim.get(f"/Users/{uid}").json()["userName"] == "mover@x.io"
    assert scim.get(f"/Groups/{gid}").json()["displayName"] == "Mover"
    assert orgs.change_count() == before


def test_member_display_is_returned_on_request_only(scim: Scim) -> None:
    uid = scim.post("/Users", user_body("disp@x.io", displayName="Disp Lay")).json()["id"]
    gid = scim.post("/Groups", group_body("display-test", [uid])).json()["id"]
    plain = scim.get(f"/Groups/{gid}").json()["members"]
    assert plain == [
        {"value": uid, "$ref": f"http://idsync.test/scim/v2/Users/{uid}", "type": "User"}
    ]
    asked = scim.get(f"/Groups/{gid}", params={"attributes": "members.display"}).json()
    assert asked["members"] == [{"display": "Disp Lay"}]


def test_a_lookup_is_one_statement_with_each_users_groups(orgs: Orgs) -> None:
    """`userName eq` (what Okta sends before every create) costs one SELECT: the token
    is remembered and each user's `groups` come from the page query itself, sorted by
    displayName like a single-user GET; users without groups have none. So does a GET
    by id."""
    scim = orgs.a
    u1 = scim.post("/Users", user_body("in-two@x.io")).json()["id"]
    u2 = scim.post("/Users", user_body("in-none@x.io")).json()["id"]
    g_b = scim.post("/Groups", group_body("beta", [u1])).json()["id"]
    g_a = scim.post("/Groups", group_body("Alpha", [u1])).json()["id"]

    with executed_statements(orgs) as executed:
        found = scim.get("/Users", params={"filter": 'userName eq "IN-TWO@x.io"', "count": 100})
        single = scim.get(f"/Users/{u1}")
    assert found.status_code == 200, found.text
    assert single.status_code == 200, single.text
    statements = [s for s in executed if s.strip().upper() != "BEGIN"]  # SQLite WAL reader
    assert len(statements) == 2, statements
    (user,) = found.json()["Resources"]
    assert [(g["value"], g["display"]) for g in user["groups"]] == [(g_a, "Alpha"), (g_b, "beta")]
    assert user == single.json()

    page = scim.get("/Users", params={"filter": 'userName sw "in-"'}).json()["Resources"]
    by_id = {u["id"]: u for u in page}
    assert [g["value"] for g in by_id[u1]["groups"]] == [g_a, g_b]
    assert "groups" not in by_id[u2]
    slim = scim.get("/Users", params={"filter": 'userName sw "in-"', "attributes": "userName"})
    assert all("groups" not in u for u in slim.json()["Resources"])
    searched = scim.post("/.search", {"filter": 'userName eq "in-two@x.io"'}).json()
    assert [g["value"] for g in searched["Resources"][0]["groups"]] == [g_a, g_b]


def test_a_user_create_is_one_statement_on_postgresql(orgs: Orgs) -> None:
    """POST /Users: on PostgreSQL the row, the revision and the change row are written
    by one statement run as its own transaction (no lock held across a round trip); a
    taken userName still gets 409 and writes nothing."""
    scim = orgs.a
    assert scim.post("/Users", user_body("first@x.io")).status_code == 201  # token now known
    before = orgs.change_count()
    with executed_statements(orgs) as statements:
        made = scim.post("/Users", user_body("second@x.io"))
        taken = scim.post("/Users", user_body("SECOND@x.io"))
    assert made.status_code == 201, made.text
    assert taken.status_code == 409 and taken.json()["scimType"] == "uniqueness"
    assert orgs.change_count() == before + 1
    if orgs.db.dialect == "postgresql":
        assert len(statements) == 2, statements  # one per request
        assert statements[0].lstrip().startswith("WITH inserted AS")
    else:  # SQLite: the row, the revision, the change row inside BEGIN IMMEDIATE
        writes = [s.split()[0].upper() for s in statements if s != "BEGIN IMMEDIATE"]
        assert writes == ["INSERT", "UPDATE", "INSERT", "INSERT"], statements  # 409: 1st
    assert scim.get(f"/Users/{made.json()['id']}").json()["userName"] == "second@x.io"


def test_locations_follow_the_host_each_request_names(scim: Scim) -> None:
    for i, host in enumerate(("a.example", "b.example:8443", "a.example")):
        created = scim.post("/Users", user_body(f"host-{i}@example.com"), headers={"Host": host})
        assert created.status_code == 201, created.text
        location = created.json()["meta"]["location"]
        assert location.startswith(f"http://{host}/scim/v2/Users/"), location
        assert created.headers["location"] == location
