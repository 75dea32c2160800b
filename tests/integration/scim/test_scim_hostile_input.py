"""Hostile SCIM input (issue 10): deep nesting, surrogate bytes, Bulk operation shapes,
another organization's user as manager, trailing slashes. Each was a 500 or a redirect;
each is now a SCIM error with the right status and scimType, and writes nothing."""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.support.scim_client import Orgs, Scim, group_body, user_body

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def _scim_error(r: Any, status: int, scim_type: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert body["schemas"] == [ERROR]
    assert body["status"] == str(status)
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body
    return body


def _raw(scim: Scim, method: str, path: str, content: bytes) -> Any:
    headers = {"Authorization": f"Bearer {scim.token}", "Content-Type": "application/scim+json"}
    return scim.client.request(method, f"/scim/v2{path}", content=content, headers=headers)


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_deeply_nested_bodies_are_invalid_syntax(orgs: Orgs) -> None:
    """~990 levels used to be a RecursionError (500) wherever the body went."""
    scim = orgs.a
    uid = scim.post("/Users", user_body("deep@x.io")).json()["id"]
    gid = scim.post("/Groups", group_body("deep")).json()["id"]
    before = orgs.change_count()
    deep = _deep(990)
    bodies = [
        ("POST", "/Users", f'{{"userName":"d1@x.io","title":{deep}}}'),
        ("PUT", f"/Users/{uid}", f'{{"userName":"deep@x.io","name":{{"givenName":{deep}}}}}'),
        ("POST", "/Groups", f'{{"displayName":"g2","members":[{{"value":{deep}}}]}}'),
        (
            "PATCH",
            f"/Users/{uid}",
            f'{{"schemas":["{PATCH_OP}"],"Operations":[{{"op":"add","path":"title","value":{deep}}}]}}',
        ),
        (
            "PATCH",
            f"/Groups/{gid}",
            f'{{"schemas":["{PATCH_OP}"],"Operations":[{{"op":"add","path":"members","value":{deep}}}]}}',
        ),
        (
            "POST",
            "/Bulk",
            f'{{"schemas":["{BULK}"],"Operations":[{{"method":"POST","path":"/Users",'
            f'"data":{{"userName":"b@x.io","x":{deep}}}}}]}}',
        ),
        ("POST", "/Users/.search", f'{{"filter":{deep}}}'),
        ("POST", "/Users", deep),  # a top-level array
        ("POST", "/Users", _deep(100_000)),  # past the parser's own limit
    ]
    for method, path, body in bodies:
        r = _raw(scim, method, path, body.encode())
        detail = _scim_error(r, 400, "invalidSyntax")["detail"]
        assert "deeper than 32 levels" in detail, (method, path, detail)
    assert orgs.change_count() == before
    # 32 levels is allowed (and fails on what it says, not on its depth)
    r = _raw(scim, "POST", "/Users", f'{{"userName":"ok@x.io","title":{_deep(31)}}}'.encode())
    _scim_error(r, 400, "invalidValue")


def test_raw_surrogate_bytes_are_invalid_syntax(orgs: Orgs) -> None:
    """`\\xed\\xa0\\x80` (a surrogate encoded as if it were UTF-8) is not UTF-8; Python's
    parser took it (surrogatepass) and the write failed with UnicodeEncodeError (500)."""
    scim = orgs.a
    uid = scim.post("/Users", user_body("sur@x.io")).json()["id"]
    before = orgs.change_count()
    bad = b"\xed\xa0\x80"
    bodies = [
        ("POST", "/Users", b'{"userName":"s' + bad + b'@x.io"}'),
        ("PUT", f"/Users/{uid}", b'{"userName":"sur@x.io","nickName":"' + bad + b'"}'),
        ("POST", "/Groups", b'{"displayName":"' + bad + b'"}'),
        (
            "PATCH",
            f"/Users/{uid}",
            b'{"schemas":["' + PATCH_OP.encode() + b'"],"Operations":[{"op":"replace",'
            b'"path":"title","value":"' + bad + b'"}]}',
        ),
        (
            "POST",
            "/Bulk",
            b'{"schemas":["' + BULK.encode() + b'"],"Operations":[{"method":"POST",'
            b'"path":"/Users","data":{"userName":"' + bad + b'"}}]}',
        ),
        ("POST", "/Users/.search", b'{"filter":"userName eq \\"' + bad + b'\\""}'),
        ("POST", "/Users", b'{"userName":"latin1-\xe9@x.io"}'),  # not UTF-8 either
    ]
    for method, path, body in bodies:
        _scim_error(_raw(scim, method, path, body), 400, "invalidSyntax")
    assert orgs.change_count() == before


def _bulk(scim: Scim, *operations: dict[str, Any]) -> list[dict[str, Any]]:
    r = scim.post("/Bulk", {"schemas": [BULK], "Operations": list(operations)})
    assert r.status_code == 200, r.text
    ops: list[dict[str, Any]] = r.json()["Operations"]
    return ops


def test_bulk_operation_fields_must_be_strings(orgs: Orgs) -> None:
    """A list as `path` was a KeyError, a number as `version` an AttributeError: 500s
    inside a 200 Bulk response. Each is now that operation's 400 invalidValue."""
    scim = orgs.a
    created = {"method": "POST", "bulkId": "pl", "path": "/Users", "data": user_body("pl@x.io")}
    results = _bulk(
        scim,
        created,
        {"method": "PATCH", "path": ["/Users/bulkId:pl"], "data": scim.ops()},
        {"method": "DELETE", "path": "/Users/bulkId:pl", "version": 5},
        {"method": "DELETE", "path": "/Users/bulkId:pl", "bulkId": {"x": 1}},
        {"method": ["DELETE"], "path": "/Users/bulkId:pl"},
        {"path": "/Users", "data": user_body("nomethod@x.io")},
    )
    assert results[0]["status"] == "201"
    for result in results[1:]:
        assert result["status"] == "400", result
        assert result["response"]["scimType"] == "invalidValue", result
        assert result["response"]["schemas"] == [ERROR]
    assert scim.get(results[0]["location"].split("/scim/v2")[1]).status_code == 200
    assert (
        scim.get("/Users", params={"filter": 'userName eq "nomethod@x.io"'}).json()["totalResults"]
        == 0
    )
    # the string forms still work
    version = results[0]["version"]
    done = _bulk(
        scim,
        {"method": "DELETE", "path": results[0]["location"].split("/v2")[1], "version": version},
    )
    assert done[0]["status"] == "204", done


def test_bulk_schemas_must_be_a_list(scim: Scim) -> None:
    """A number was a TypeError (500); a string passed as a substring match."""
    for schemas in (7, {"a": BULK}, BULK):
        r = scim.post("/Bulk", {"schemas": schemas, "Operations": []})
        _scim_error(r, 400, "invalidValue")


def test_manager_of_another_organization_is_refused(orgs: Orgs) -> None:
    """Another organization's user is refused as a manager, like as a group member;
    one's own users and ids no user has (an IdP may send a manager before provisioning
    them) are kept."""
    a, b = orgs.a, orgs.b
    foreign = b.post("/Users", user_body("boss@globex.io")).json()["id"]
    boss = a.post("/Users", user_body("boss@acme.io")).json()["id"]
    uid = a.post("/Users", user_body("worker@acme.io")).json()["id"]
    before = orgs.change_count()

    def with_manager(name: str, manager: Any) -> dict[str, Any]:
        return user_body(
            name,
            **{
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
                ENTERPRISE: {"manager": manager},
            },
        )

    _scim_error(
        a.post("/Users", with_manager("new@acme.io", {"value": foreign})), 400, "invalidValue"
    )
    _scim_error(a.post("/Users", with_manager("new2@acme.io", foreign)), 400, "invalidValue")
    _scim_error(
        a.put(f"/Users/{uid}", with_manager("worker@acme.io", {"value": foreign})),
        400,
        "invalidValue",
    )
    for op in (
        {"op": "add", "path": f"{ENTERPRISE}:manager", "value": foreign},
        {"op": "replace", "path": f"{ENTERPRISE}:manager.value", "value": foreign},
        {"op": "add", "value": {f"{ENTERPRISE}:manager": {"value": foreign}}},
    ):
        _scim_error(a.patch(f"/Users/{uid}", a.ops(op)), 400, "invalidValue")
    bulk = _bulk(
        a, {"method": "POST", "path": "/Users", "data": with_manager("b@acme.io", foreign)}
    )
    assert bulk[0]["status"] == "400", bulk
    assert orgs.change_count() == before

    made = a.post("/Users", with_manager("ok@acme.io", {"value": boss}))
    assert made.status_code == 201, made.text
    assert made.json()[ENTERPRISE]["manager"]["value"] == boss
    later = a.post("/Users", with_manager("later@acme.io", "not-yet-provisioned"))
    assert later.status_code == 201, later.text
    r = a.patch(
        f"/Users/{uid}", a.ops({"op": "add", "path": f"{ENTERPRISE}:manager", "value": boss})
    )
    assert r.status_code == 200, r.text


def test_trailing_slash_is_404_not_a_redirect(scim: Scim) -> None:
    uid = scim.post("/Users", user_body("slash@x.io")).json()["id"]
    for path in ("/Users/", f"/Users/{uid}/", "/Groups/", "/ServiceProviderConfig/"):
        r = scim.get(path, follow_redirects=False)
        _scim_error(r, 404)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def test_forged_cursors_are_invalid_cursor(scim: Scim) -> None:
    """A cursor is client input: one nested 5000 levels deep was a RecursionError, and
    a well-formed one naming an id with U+0000 or surrogate bytes failed in the database
    (the fingerprint is a plain hash of the query anyone can recompute)."""
    for name in ("c1@x.io", "c2@x.io", "c3@x.io"):
        scim.post("/Users", user_body(name))
    issued = scim.get("/Users", params={"cursor": "", "count": 1}).json()["nextCursor"]
    doc = json.loads(base64.urlsafe_b64decode(issued + "=" * (-len(issued) % 4)))
    forged = [
        _b64(b"[" * 5000 + b"]" * 5000),
        _b64(json.dumps({**doc, "i": "a\u0000b"}).encode()),
        _b64(json.dumps(doc).replace(doc["i"], "x").encode().replace(b'"x"', b'"\xed\xa0\x80"')),
        _b64(b'{"v":1,"c":"\xed\xa0\x80"}'),
    ]
    for cursor in forged:
        r = scim.get("/Users", params={"cursor": cursor, "count": 1})
        _scim_error(r, 400, "invalidCursor")
    assert scim.get("/Users", params={"cursor": issued, "count": 1}).status_code == 200
