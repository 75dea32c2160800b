"""List pages: totalResults stays exact while pages skip the COUNT between writes, and
a page is one statement with each user's groups (both backends)."""

from __future__ import annotations

from typing import Any

from tests.support.scim_client import Orgs, Scim, group_body, user_body
from tests.support.statements import executed_statements


def _page(scim: Scim, flt: str | None = None, **params: Any) -> dict[str, Any]:
    query: dict[str, Any] = {"count": 2, **params}
    if flt is not None:
        query["filter"] = flt
    r = scim.get("/Users", params=query)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _counts(statements: list[str]) -> int:
    return sum(s.lower().count("count(") for s in statements)


def test_totals_follow_every_kind_of_write(orgs: Orgs) -> None:
    scim = orgs.a
    ids = [scim.post("/Users", user_body(f"t{i}@x.io")).json()["id"] for i in range(5)]
    active = "active eq true"
    assert _page(scim, active)["totalResults"] == 5
    assert _page(scim, active, startIndex=3)["totalResults"] == 5  # remembered, still exact
    scim.post("/Users", user_body("t5@x.io"))
    assert _page(scim, active)["totalResults"] == 6
    scim.patch(f"/Users/{ids[0]}", scim.ops({"op": "replace", "value": {"active": False}}))
    assert _page(scim, active)["totalResults"] == 5
    assert _page(scim, "active eq false")["totalResults"] == 1
    scim.delete(f"/Users/{ids[1]}")
    assert _page(scim, active)["totalResults"] == 4
    assert _page(scim)["totalResults"] == 5  # no filter: the deactivated user counts
    gid = scim.post("/Groups", group_body("totals", ids[2:4])).json()["id"]
    in_group = f'groups.value eq "{gid}"'
    assert _page(scim, in_group, count=1)["totalResults"] == 2
    scim.patch(
        f"/Groups/{gid}",
        scim.ops({"op": "remove", "path": f'members[value eq "{ids[2]}"]'}),
    )
    assert _page(scim, in_group, count=1)["totalResults"] == 1
    # Another organization's writes change nothing here, and its pages count its own.
    orgs.b.post("/Users", user_body("b1@x.io"))
    assert _page(scim, active)["totalResults"] == 4
    assert _page(orgs.b, active)["totalResults"] == 1


def test_unchanged_pages_skip_the_count(orgs: Orgs) -> None:
    scim = orgs.a
    for i in range(5):
        scim.post("/Users", user_body(f"c{i}@x.io"))
    with executed_statements(orgs) as first:
        assert _page(scim, "active eq true")["totalResults"] == 5
    with executed_statements(orgs) as again:
        assert _page(scim, "active eq true", startIndex=3)["totalResults"] == 5
    pages = [s for s in again if s.strip().upper() != "BEGIN"]
    assert len(pages) == 1 and _counts(pages) == 0, pages  # nothing written: no COUNT
    assert _counts(first) == 1  # the first page counted, in its own statement
    assert len([s for s in first if s.strip().upper() != "BEGIN"]) == 1
    scim.post("/Users", user_body("c5@x.io"))
    with executed_statements(orgs) as after_write:
        assert _page(scim, "active eq true", startIndex=3)["totalResults"] == 6
    assert _counts(after_write) == 1  # the revision moved: counted again


def test_a_page_past_the_end_still_tells_the_total(scim: Scim) -> None:
    for i in range(3):
        scim.post("/Users", user_body(f"e{i}@x.io"))
    body = _page(scim, "active eq true", startIndex=10)
    assert body["totalResults"] == 3 and body["Resources"] == []
    assert body["startIndex"] == 10 and body["itemsPerPage"] == 0
    last = _page(scim, "active eq true", startIndex=3)
    assert last["totalResults"] == 3 and len(last["Resources"]) == 1


def test_a_page_carries_each_users_groups_in_its_one_statement(orgs: Orgs) -> None:
    scim = orgs.a
    ids = [scim.post("/Users", user_body(f"g{i}@x.io")).json()["id"] for i in range(4)]
    g1 = scim.post("/Groups", group_body("one", ids[:2])).json()["id"]
    g2 = scim.post("/Groups", group_body("two", ids[1:3])).json()["id"]
    _page(scim, "active eq true")  # the total is remembered from here on
    with executed_statements(orgs) as statements:
        body = _page(scim, "active eq true", count=3, startIndex=2)
    assert len([s for s in statements if s.strip().upper() != "BEGIN"]) == 1, statements
    groups = {u["id"]: [g["value"] for g in u.get("groups", [])] for u in body["Resources"]}
    assert groups == {ids[1]: [g1, g2], ids[2]: [g2], ids[3]: []}
