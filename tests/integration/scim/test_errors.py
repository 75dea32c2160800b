"""Every error is a SCIM Error body with the right status and scimType."""

from __future__ import annotations

from models.db.tokens import revoke_token, verify_scim_token
from tests.support.scim_client import Orgs, Scim, user_body

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def _is_scim_error(response: object, status: int, scim_type: str | None = None) -> None:
    r = response
    assert r.status_code == status, r.text  # type: ignore[attr-defined]
    body = r.json()  # type: ignore[attr-defined]
    assert body["schemas"] == [ERROR]
    assert body["status"] == str(status)
    if scim_type is not None:
        assert body["scimType"] == scim_type


def test_missing_and_bad_tokens_are_401_with_scim_body(scim: Scim) -> None:
    no_auth = scim.client.get("/scim/v2/Users")
    _is_scim_error(no_auth, 401)
    assert no_auth.headers["www-authenticate"].startswith("Bearer")
    bad = scim.client.get("/scim/v2/Users", headers={"Authorization": "Bearer nope"})
    _is_scim_error(bad, 401)
    basic = scim.client.get("/scim/v2/Users", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    _is_scim_error(basic, 401)


def test_unknown_path_and_wrong_method(scim: Scim) -> None:
    _is_scim_error(scim.get("/Nope"), 404)
    _is_scim_error(scim.get("/Users/00000000-0000-0000-0000-000000000000"), 404)
    _is_scim_error(
        scim.client.put("/scim/v2/Users", headers={"Authorization": f"Bearer {scim.token}"}), 405
    )


def test_malformed_json_is_invalid_syntax(orgs: Orgs) -> None:
    scim = orgs.a
    before = orgs.change_count()
    r = scim.client.post(
        "/scim/v2/Users",
        content=b'{"userName": ',
        headers={"Authorization": f"Bearer {scim.token}", "Content-Type": "application/scim+json"},
    )
    _is_scim_error(r, 400, "invalidSyntax")
    r = scim.client.post(
        "/scim/v2/Users",
        content=b"[1, 2]",
        headers={"Authorization": f"Bearer {scim.token}", "Content-Type": "application/json"},
    )
    _is_scim_error(r, 400, "invalidSyntax")
    assert orgs.change_count() == before


def test_json_that_cannot_be_stored_is_refused(orgs: Orgs) -> None:
    """Python's parser takes NaN/Infinity and escapes of unpaired surrogates; neither is
    storable JSON (RFC 8259 §6, §8.2): 400 invalidSyntax. A \\u0000 is JSON, but
    PostgreSQL cannot store it: 400 invalidValue on both backends. None of them is a 500
    from the database, and they write nothing; a surrogate *pair* is a character like
    any other."""
    scim = orgs.a
    headers = {"Authorization": f"Bearer {scim.token}", "Content-Type": "application/scim+json"}
    uid = scim.post("/Users", user_body("stored@x.io")).json()["id"]
    before = orgs.change_count()

    def user(rest: str) -> bytes:
        return ('{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],' + rest + "}").encode()

    bodies = [
        user('"userName":"nan@x.io","name":{"givenName":NaN}'),
        user('"userName":"inf@x.io","title":-Infinity'),
        user('"userName":"lone@x.io","nickName":"a\\ud800b"'),
        user('"userName":"low@x.io","name":{"formatted":"\\uDC00"}'),
        user('"userName":"key@x.io","\\udbff":"x"'),
    ]
    for body in bodies:
        _is_scim_error(
            scim.client.post("/scim/v2/Users", content=body, headers=headers),
            400,
            "invalidSyntax",
        )
    patch = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"nickName","value":"\\ud83d"}]}'  # noqa: E501
    r = scim.client.patch(f"/scim/v2/Users/{uid}", content=patch.encode(), headers=headers)
    _is_scim_error(r, 400, "invalidSyntax")
    assert orgs.change_count() == before
    for body in (
        user('"userName":"nul@x.io","nickName":"a\\u0000b"'),
        user('"userName":"nul\\u0000@x.io"'),
        user('"userName":"nulkey@x.io","name":{"\\u0000":"x"}'),
    ):  # JSON, but not storable by PostgreSQL: refused on every backend alike
        r = scim.client.post("/scim/v2/Users", content=body, headers=headers)
        _is_scim_error(r, 400, "invalidValue")
    nul_patch = patch.replace("\\ud83d", "\\u0000")
    r = scim.client.patch(f"/scim/v2/Users/{uid}", content=nul_patch.encode(), headers=headers)
    _is_scim_error(r, 400, "invalidValue")
    r = scim.client.post(
        "/scim/v2/Groups",
        content=b'{"displayName":"g","members":[{"value":"\\u0000"}]}',
        headers=headers,
    )
    _is_scim_error(r, 400, "invalidValue")
    assert orgs.change_count() == before
    pair = user('"userName":"pair@x.io","nickName":"\\ud83d\\ude00"')
    made = scim.client.post("/scim/v2/Users", content=pair, headers=headers)
    assert made.status_code == 201, made.text
    assert scim.get(f"/Users/{made.json()['id']}").json()["nickName"] == "\U0001f600"


def test_plain_json_content_type_is_accepted(scim: Scim) -> None:
    r = scim.client.post(
        "/scim/v2/Users",
        json=user_body("plain@x.io"),
        headers={"Authorization": f"Bearer {scim.token}", "Content-Type": "application/json"},
    )
    assert r.status_code == 201, r.text


def test_oversized_body_is_413(scim: Scim) -> None:
    huge = user_body("big@x.io", displayName="x" * 2_000_000)
    _is_scim_error(scim.post("/Users", huge), 413)


def test_missing_required_and_bad_types(orgs: Orgs) -> None:
    scim = orgs.a
    before = orgs.change_count()
    _is_scim_error(
        scim.post("/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]}),
        400,
        "invalidValue",
    )
    _is_scim_error(scim.post("/Users", user_body("t@x.io", active="maybe")), 400, "invalidValue")
    _is_scim_error(
        scim.post("/Groups", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"]}),
        400,
        "invalidValue",
    )
    assert orgs.change_count() == before


def test_readonly_patch_is_mutability_error(scim: Scim) -> None:
    uid = scim.post("/Users", user_body("ro@x.io")).json()["id"]
    r = scim.patch(f"/Users/{uid}", scim.ops({"op": "replace", "path": "groups", "value": []}))
    _is_scim_error(r, 400, "mutability")


def test_bad_patch_path(scim: Scim) -> None:
    uid = scim.post("/Users", user_body("bp@x.io")).json()["id"]
    r = scim.patch(
        f"/Users/{uid}", scim.ops({"op": "replace", "path": "emails[type eq", "value": "x"})
    )
    assert r.status_code == 400
    assert r.json()["scimType"] in ("invalidPath", "invalidFilter")


def test_failed_patch_changes_nothing(orgs: Orgs) -> None:
    scim = orgs.a
    uid = scim.post("/Users", user_body("atomic@x.io")).json()["id"]
    before_changes = orgs.change_count()
    before = scim.get(f"/Users/{uid}").json()
    r = scim.patch(
        f"/Users/{uid}",
        scim.ops(
            {"op": "replace", "path": "displayName", "value": "Changed"},
            {"op": "replace", "path": "active", "value": False},
            {"op": "replace", "path": "id", "value": "nope"},
        ),
    )
    assert r.status_code == 400
    assert scim.get(f"/Users/{uid}").json() == before
    assert orgs.change_count() == before_changes


def test_unknown_member_rejected_without_side_effects(orgs: Orgs) -> None:
    scim = orgs.a
    uid = scim.post("/Users", user_body("m@x.io")).json()["id"]
    gid = scim.post("/Groups", {"displayName": "g", "members": [{"value": uid}]}).json()["id"]
    before_changes = orgs.change_count()
    r = scim.patch(
        f"/Groups/{gid}",
        scim.ops(
            {"op": "remove", "path": f'members[value eq "{uid}"]'},
            {"op": "add", "path": "members", "value": [{"value": "does-not-exist"}]},
        ),
    )
    _is_scim_error(r, 400, "invalidValue")
    assert [m["value"] for m in scim.get(f"/Groups/{gid}").json()["members"]] == [uid]
    assert orgs.change_count() == before_changes


def test_bad_pagination_parameters(scim: Scim) -> None:
    _is_scim_error(scim.get("/Users", params={"count": "lots"}), 400, "invalidValue")
    _is_scim_error(scim.get("/Users", params={"sortOrder": "sideways"}), 400, "invalidValue")


def test_a_revoked_token_stops_working_when_its_window_ends(orgs: Orgs) -> None:
    """IDSYNC_SCIM_TOKEN_CACHE_S (2 s here, the default): a verified token is remembered
    for the window, a revoked one then gets 401, and the other org is unaffected."""
    scim, other = orgs.a, orgs.b
    cache = scim.client.app.state.scim_tokens  # type: ignore[attr-defined]
    now = [1000.0]
    cache.clock = lambda: now[0]
    assert cache.ttl_s == 2.0
    assert scim.get("/Users").status_code == 200  # verified, remembered
    assert other.get("/Users").status_code == 200
    with orgs.db.write() as session:
        ident = verify_scim_token(session, scim.token)
        assert ident is not None
        assert revoke_token(session, ident.token_id) == 1
    assert scim.get("/Users").status_code == 200  # inside the window
    now[0] += 2.0
    gone = scim.get("/Users")
    _is_scim_error(gone, 401)
    assert scim.get("/Users").status_code == 401  # a revoked token is never remembered
    assert other.get("/Users").status_code == 200


def test_unknown_tokens_are_never_remembered(scim: Scim) -> None:
    cache = scim.client.app.state.scim_tokens  # type: ignore[attr-defined]
    before = len(cache)
    for _ in range(3):
        bad = scim.client.get("/scim/v2/Users", headers={"Authorization": "Bearer idsync_scim_x"})
        _is_scim_error(bad, 401)
    assert len(cache) == before


def test_scim_mount_behind_a_root_path_and_at_its_boundary(orgs: Orgs) -> None:
    """SCIM is mounted at /scim/v2 (idsync.app.ScimErrors): behind a proxy's
    root path they still resolve and render absolute URLs with it; `/scim/v2x` is not
    SCIM; routing errors below /scim/v2 keep the SCIM Error schema."""
    from fastapi.testclient import TestClient

    scim = orgs.a
    made = scim.post("/Users", user_body("root@x.io")).json()
    auth = {"Authorization": f"Bearer {scim.token}"}
    with TestClient(scim.client.app, root_path="/idsync") as proxied:
        got = proxied.get(f"/idsync/scim/v2/Users/{made['id']}", headers=auth)
        assert got.status_code == 200, got.text
        assert got.json()["meta"]["location"] == (
            f"http://testserver/idsync/scim/v2/Users/{made['id']}"
        )
        _is_scim_error(proxied.get("/idsync/scim/v2/Nope", headers=auth), 404)
    other = scim.client.get("/scim/v2x/Users", headers=auth)
    assert other.status_code == 404
    _is_scim_error(scim.client.delete("/scim/v2/Users", headers=auth), 405)
    assert scim.client.get("/scim/v2/Users", headers=auth).headers["x-request-id"]


def test_ids_no_row_can_have_are_404_and_far_pages_are_empty(orgs: Orgs) -> None:
    """A path id holding U+0000 was never stored (PostgreSQL cannot hold it): 404, not a
    500 from binding it. A startIndex past what PostgreSQL binds as an OFFSET is simply
    past the end: an empty page that echoes the startIndex asked for."""
    scim = orgs.a
    scim.post("/Users", user_body("far@x.io"))
    before = orgs.change_count()
    for kind in ("Users", "Groups"):
        path = f"/{kind}/a%00b"
        _is_scim_error(scim.get(path), 404)
        _is_scim_error(scim.get(path, params={"excludedAttributes": "members"}), 404)
        _is_scim_error(scim.delete(path), 404)
        _is_scim_error(
            scim.patch(path, scim.ops({"op": "replace", "path": "displayName", "value": "x"})), 404
        )
    _is_scim_error(scim.put("/Users/a%00b", user_body("far@x.io")), 404)
    assert orgs.change_count() == before
    wrong = scim.client.get("/scim/v2/Users/a%00b", headers={"Authorization": "Bearer nope"})
    _is_scim_error(wrong, 401)
    for start in (2**31, 10**12, 2**63, 10**30):
        for params in ({}, {"filter": 'userName eq "far@x.io"'}, {"filter": "active eq true"}):
            r = scim.get("/Users", params={**params, "startIndex": start})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["startIndex"] == start and body["Resources"] == []
            assert body["totalResults"] == 1
