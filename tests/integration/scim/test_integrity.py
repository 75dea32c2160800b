"""Change log, revisions, audit trail and concurrency."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from idsync.app import create_app
from models.db.database import Database
from models.db.tables import Change
from models.db.tokens import create_scim_token, get_or_create_org
from tests.support.live_server import live_server
from tests.support.scim_client import Orgs, group_body, make_settings, user_body


def _changes(db: Database, org_id: str) -> list[Change]:
    with db.read() as session:
        return list(
            session.scalars(select(Change).where(Change.org_id == org_id).order_by(Change.id))
        )


def _app_and_headers(db: Database, org_name: str) -> tuple[FastAPI, dict[str, str]]:
    """The app, and the SCIM request headers of a new token of organization ``org_name``."""
    with db.write() as session:
        token = create_scim_token(session, get_or_create_org(session, org_name))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    return create_app(make_settings(), db=db), headers


def test_every_write_records_a_change_with_increasing_revision(orgs: Orgs) -> None:
    a, b = orgs.a, orgs.b
    uid = a.post("/Users", user_body("rev@x.io")).json()["id"]
    gid = a.post("/Groups", group_body("rev-group", [uid])).json()["id"]
    a.patch(f"/Users/{uid}", a.ops({"op": "replace", "value": {"active": False}}))
    a.patch(f"/Groups/{gid}", a.ops({"op": "remove", "path": f'members[value eq "{uid}"]'}))
    a.delete(f"/Groups/{gid}")
    b.post("/Users", user_body("other-org@x.io"))

    changes = _changes(orgs.db, a.org_id)
    assert [c.kind for c in changes] == [
        "user.created",
        "group.created",
        "user.deactivated",
        "group.members_changed",
        "group.deleted",
    ]
    assert [c.revision for c in changes] == [1, 2, 3, 4, 5]
    assert changes[1].user_ids == [uid] and changes[1].group_ids == [gid]
    assert changes[3].user_ids == [uid]
    assert all(c.actor.startswith("scim-token:") for c in changes)
    assert all(c.request_id for c in changes)
    assert [c.revision for c in _changes(orgs.db, b.org_id)] == [1]


def test_noop_writes_record_nothing(orgs: Orgs) -> None:
    a = orgs.a
    body = user_body("noop@x.io")
    uid = a.post("/Users", body).json()["id"]
    before = orgs.change_count()
    again = a.put(f"/Users/{uid}", body)
    assert again.status_code == 200
    assert again.json()["meta"]["version"] == 'W/"1"'
    assert orgs.change_count() == before


def test_rejected_writes_record_nothing(orgs: Orgs) -> None:
    a = orgs.a
    a.post("/Users", user_body("dup@x.io"))
    before = orgs.change_count()
    assert a.post("/Users", user_body("dup@x.io")).status_code == 409
    assert (
        a.patch("/Users/missing", a.ops({"op": "replace", "value": {"active": False}})).status_code
        == 404
    )
    assert orgs.change_count() == before


def test_parallel_member_adds_lose_nothing(pg_database: Database) -> None:
    """IdPs add members to one group with parallel PATCHes; every add must survive."""
    app, headers = _app_and_headers(pg_database, "parallel")
    with live_server(app) as base, httpx.Client(base_url=f"{base}/scim/v2", headers=headers) as c:
        users = [c.post("/Users", json=user_body(f"p{i}@x.io")).json()["id"] for i in range(40)]
        gid = c.post("/Groups", json=group_body("parallel")).json()["id"]

        def add(uid: str) -> int:
            with httpx.Client(base_url=f"{base}/scim/v2", headers=headers) as own:
                r = own.patch(
                    f"/Groups/{gid}",
                    json={
                        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}],
                    },
                )
                return r.status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(add, users))
        assert set(statuses) <= {200, 204}
        members = c.get(f"/Groups/{gid}").json()["members"]
        assert sorted(m["value"] for m in members) == sorted(users)
        assert c.get(f"/Groups/{gid}").json()["meta"]["version"] == f'W/"{1 + len(users)}"'


def test_parallel_creates_of_one_user_name_give_one_201(pg_database: Database) -> None:
    app, headers = _app_and_headers(pg_database, "race")
    with live_server(app) as base:

        def create(_: int) -> int:
            with httpx.Client(base_url=f"{base}/scim/v2", headers=headers) as own:
                return own.post("/Users", json=user_body("race@x.io")).status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = sorted(pool.map(create, range(16)))
    assert statuses.count(201) == 1
    assert statuses.count(409) == 15
