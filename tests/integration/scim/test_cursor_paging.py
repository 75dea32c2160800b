"""Cursor pagination (RFC 9865) on both backends."""

from __future__ import annotations

import re
from typing import Any

from tests.support.scim_client import Orgs, Scim, group_body, user_body


def _walk(
    scim: Scim, path: str, count: int, **params: Any
) -> tuple[list[str], list[dict[str, Any]]]:
    """Every page from an empty cursor to the last; (ids in order, the page bodies)."""
    ids: list[str] = []
    pages: list[dict[str, Any]] = []
    cursor = ""
    for _ in range(100):
        r = scim.get(path, params={"cursor": cursor, "count": count, **params})
        assert r.status_code == 200, r.text
        body = r.json()
        pages.append(body)
        ids += [res["id"] for res in body["Resources"]]
        if "nextCursor" not in body:
            return ids, pages
        cursor = body["nextCursor"]
    raise AssertionError("no last page")


def test_pages_follow_the_default_order_to_the_end(scim: Scim) -> None:
    made = [scim.post("/Users", user_body(f"cur{i}@x.io")).json()["id"] for i in range(7)]
    scim.post("/Users", user_body("other@y.io"))
    listed = scim.get("/Users", params={"filter": 'userName ew "@x.io"', "count": 100}).json()
    in_order = [u["id"] for u in listed["Resources"]]
    assert sorted(in_order) == sorted(made)

    ids, pages = _walk(scim, "/Users", 3, filter='userName ew "@x.io"')
    assert ids == in_order  # no duplicates, nothing missing, same order
    assert [p["itemsPerPage"] for p in pages] == [3, 3, 1]
    for page in pages:
        assert "startIndex" not in page and "totalResults" not in page
        assert page["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]
    for page in pages[:-1]:
        assert re.fullmatch(r"[A-Za-z0-9\-._~]+", page["nextCursor"])  # RFC 3986 unreserved
    assert "nextCursor" not in pages[-1]

    exact = _walk(scim, "/Users", 7, filter='userName ew "@x.io"')[1]
    assert len(exact) == 1 and exact[0]["itemsPerPage"] == 7  # exactly full: no next page


def test_first_page_forms_and_search_body(scim: Scim) -> None:
    for i in range(3):
        scim.post("/Users", user_body(f"f{i}@x.io"))
    bare = scim.client.get(
        "/scim/v2/Users?cursor&count=2", headers={"Authorization": f"Bearer {scim.token}"}
    )
    assert bare.status_code == 200 and bare.json()["itemsPerPage"] == 2
    searched = scim.post("/Users/.search", {"cursor": "", "count": 2})
    assert searched.status_code == 200, searched.text
    following = scim.post(
        "/Users/.search", {"cursor": searched.json()["nextCursor"], "count": 2}
    ).json()
    assert following["itemsPerPage"] == 1 and "nextCursor" not in following
    assert following["Resources"][0]["id"] not in {u["id"] for u in searched.json()["Resources"]}


def test_changes_between_pages(scim: Scim) -> None:
    """A position stays meaningful: later resources appear, deleted ones are skipped."""
    ids = [scim.post("/Users", user_body(f"c{i}@x.io")).json()["id"] for i in range(4)]
    first = scim.get("/Users", params={"cursor": "", "count": 2}).json()
    assert [u["id"] for u in first["Resources"]] == ids[:2]
    assert scim.delete(f"/Users/{ids[2]}").status_code == 204
    late = scim.post("/Users", user_body("late@x.io")).json()["id"]
    rest = scim.get("/Users", params={"cursor": first["nextCursor"], "count": 10}).json()
    assert [u["id"] for u in rest["Resources"]] == [ids[3], late]


def test_groups_page_by_cursor_too(scim: Scim) -> None:
    gids = [scim.post("/Groups", group_body(f"g{i}")).json()["id"] for i in range(3)]
    ids, _ = _walk(scim, "/Groups", 2, excludedAttributes="members")
    assert ids == gids


def test_count_zero_reports_the_total(scim: Scim) -> None:
    for i in range(3):
        scim.post("/Users", user_body(f"z{i}@x.io"))
    body = scim.get("/Users", params={"cursor": "", "count": 0}).json()
    assert body["totalResults"] == 3 and body["Resources"] == [] and "nextCursor" not in body


def _error(r: Any, status: int, scim_type: str) -> None:
    assert r.status_code == status, r.text
    assert r.json()["scimType"] == scim_type


def test_cursors_from_elsewhere_are_refused(orgs: Orgs) -> None:
    a, b = orgs.a, orgs.b
    for i in range(3):
        a.post("/Users", user_body(f"a{i}@x.io"))
        b.post("/Users", user_body(f"b{i}@x.io"))
    a.post("/Groups", group_body("ga1"))
    a.post("/Groups", group_body("ga2"))
    cursor = a.get("/Users", params={"cursor": "", "count": 1}).json()["nextCursor"]

    _error(b.get("/Users", params={"cursor": cursor}), 400, "invalidCursor")  # other org
    _error(a.get("/Groups", params={"cursor": cursor}), 400, "invalidCursor")  # other type
    other_filter = {"cursor": cursor, "filter": 'userName sw "a"'}
    _error(a.get("/Users", params=other_filter), 400, "invalidCursor")
    for junk in ("not-a-cursor", "e30", cursor[:-3], "%%%"):
        _error(a.get("/Users", params={"cursor": junk}), 400, "invalidCursor")
    assert a.get("/Users", params={"cursor": cursor}).status_code == 200


def test_mixing_paging_methods_is_refused(scim: Scim) -> None:
    _error(scim.get("/Users", params={"cursor": "", "startIndex": 1}), 400, "invalidValue")
    _error(scim.get("/Users", params={"cursor": "", "sortBy": "userName"}), 400, "invalidValue")
    _error(scim.post("/.search", {"cursor": ""}), 400, "invalidValue")
    _error(scim.post("/Users/.search", {"cursor": 5}), 400, "invalidCursor")


def test_service_provider_config_advertises_both_methods(scim: Scim) -> None:
    pagination = scim.get("/ServiceProviderConfig").json()["pagination"]
    assert pagination == {
        "cursor": True,
        "index": True,
        "defaultPaginationMethod": "index",
        "defaultPageSize": 100,
        "maxPageSize": 1000,
    }
