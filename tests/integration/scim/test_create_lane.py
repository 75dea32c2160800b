"""The create lane (PostgreSQL): POST /Users on the event loop writes what the thread path
writes, refuses what it refuses, tells the after-commit listeners only after the
commit, and keeps revisions gap-free under concurrent creates."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from idsync.app import create_app
from models.db.database import CommittedChange, Database
from models.db.tables import Change, Organization, User
from models.db.tokens import create_scim_token, get_or_create_org
from scim.create_lane import CreateLane
from tests.support.live_server import live_server
from tests.support.scim_client import Scim, make_settings, user_body
from tests.support.statements import recording_event_loop, thread_path_only

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


@dataclass
class CreateApp:
    scim: Scim
    db: Database
    lane: CreateLane
    heard: list[tuple[list[CommittedChange], str]]  # listener calls: (changes, thread name)
    thread: list[str]  # statements run through SQLAlchemy

    @contextmanager
    def thread_path_only(self) -> Iterator[None]:
        with thread_path_only(self.lane.pg):
            yield

    def changes(self) -> list[Change]:
        with self.db.read() as s:
            query = select(Change).where(Change.org_id == self.scim.org_id)
            return list(s.scalars(query.order_by(Change.revision)))

    def revision(self) -> int:
        with self.db.read() as s:
            org = s.get(Organization, self.scim.org_id)
            assert org is not None
            return org.revision


@pytest.fixture
def create_app_pg(pg_database: Database) -> Iterator[CreateApp]:
    with pg_database.write() as session:
        org = get_or_create_org(session, "creates")
        token = create_scim_token(session, org)
        org_id = org.id
    heard: list[tuple[list[CommittedChange], str]] = []
    observer = Database(pg_database.url)  # its own engine: not what the app runs

    def listener(changes: list[CommittedChange]) -> None:
        with observer.read() as s:  # what a listener sees: the change committed
            committed = select(Change.id).where(
                Change.org_id == changes[0].org_id, Change.revision == changes[0].revision
            )
            assert s.scalar(committed) is not None
        heard.append((changes, threading.current_thread().name))

    pg_database.add_listener(listener)
    app = create_app(make_settings(), db=pg_database)
    thread: list[str] = []

    def record(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        thread.append(statement)

    try:
        with TestClient(app, base_url="http://idsync.test") as client:
            lane = app.state.scim.create_lane
            assert lane is not None
            scim = Scim(client, token, org_id)
            scim.get("/Users", params={"count": 0})  # the token's last_used_at, now
            event.listen(pg_database.engine, "before_cursor_execute", record)
            yield CreateApp(scim, pg_database, lane, heard, thread)
            event.remove(pg_database.engine, "before_cursor_execute", record)
    finally:
        pg_database.remove_listener(listener)
        observer.dispose()


def _without_identity(body: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in body.items() if k not in ("id", "meta")}
    out["meta"] = {k: v for k, v in body["meta"].items() if k == "resourceType"}
    return out


def test_a_create_writes_what_the_thread_path_writes(create_app_pg: CreateApp) -> None:
    app = create_app_pg
    scim = app.scim
    before = app.revision()
    body = user_body(
        "Ada@X.io",
        externalId="e-1",
        displayName="Ada",
        password="never-stored",
        groups=[],
        **{ENTERPRISE: {"employeeNumber": "7"}},
    )
    statements: list[str] = []
    app.thread.clear()
    with recording_event_loop(app.lane.pg, statements):
        made = scim.post("/Users", body)
    assert made.status_code == 201, made.text
    assert app.thread == []  # nothing went through SQLAlchemy
    assert len(statements) == 1 and statements[0].lstrip().startswith("WITH inserted AS")
    created = made.json()
    assert made.headers["location"] == created["meta"]["location"]
    assert made.headers["etag"] == created["meta"]["version"] == 'W/"1"'
    assert "password" not in created and "groups" not in created
    assert created["userName"] == "Ada@X.io" and created["active"] is True
    assert scim.get(f"/Users/{created['id']}").json() == created  # as stored

    # The same body through the thread path: the same representation, the same change row.
    with app.thread_path_only():
        threaded = scim.post("/Users", {**body, "userName": "bob@x.io", "externalId": "e-2"})
    assert threaded.status_code == 201
    expected = _without_identity({**created, "userName": "bob@x.io", "externalId": "e-2"})
    assert _without_identity(threaded.json()) == expected
    lane_row, thread_row = app.changes()[-2:]
    for row, uid in ((lane_row, created["id"]), (thread_row, threaded.json()["id"])):
        assert row.kind == "user.created" and row.resource_type == "User"
        assert row.resource_id == uid and row.user_ids == [uid] and row.group_ids == []
        assert row.actor.startswith("scim-token:") and row.request_id
    assert lane_row.revision == before + 1 and thread_row.revision == before + 2
    assert lane_row.actor == thread_row.actor

    # The after-commit listeners heard of both, after the commit, off the event loop.
    (lane_heard, lane_thread), (thread_heard, _) = app.heard[-2:]
    assert lane_heard == [
        CommittedChange(scim.org_id, before + 1, "user.created", (created["id"],), ())
    ]
    assert thread_heard[0].revision == before + 2
    assert lane_thread.startswith("idsync-request")


def test_refusals_write_nothing(create_app_pg: CreateApp) -> None:
    app = create_app_pg
    scim = app.scim
    assert scim.post("/Users", user_body("taken@x.io")).status_code == 201
    before, heard = app.revision(), len(app.heard)
    headers = {"Authorization": f"Bearer {scim.token}", "Content-Type": "application/scim+json"}
    refusals: list[tuple[bytes, dict[str, str], int, str | None]] = [
        (b'{"userName": "TAKEN@x.io"}', {}, 409, "uniqueness"),
        (b'{"userName": ', {}, 400, "invalidSyntax"),
        (b'{"name": {"givenName": "no userName"}}', {}, 400, None),
        (b'{"userName": "x@x.io", "active": "maybe"}', {}, 400, None),
        (b'{"userName": "y@x.io"}', {"count": "x"}, 400, "invalidValue"),
        (b'{"userName": "z\\u0000@x.io"}', {}, 400, "invalidValue"),
    ]
    for raw, params, status, scim_type in refusals:
        r = scim.client.post("/scim/v2/Users", content=raw, params=params, headers=headers)
        assert r.status_code == status, (raw, r.text)
        if scim_type is not None:
            assert r.json()["scimType"] == scim_type, (raw, r.text)
        with app.thread_path_only():  # the thread path says exactly the same
            threaded = scim.client.post(
                "/scim/v2/Users", content=raw, params=params, headers=headers
            )
        assert (threaded.status_code, threaded.json()) == (r.status_code, r.json()), raw
    assert app.revision() == before and len(app.heard) == heard
    unknown = scim.client.post(
        "/scim/v2/Users",
        content=b'{"userName": "w@x.io"}',
        headers={**headers, "Authorization": "Bearer idsync_scim_unknown"},
    )
    assert unknown.status_code == 401  # the thread path's answer
    with app.db.read() as s:
        assert s.scalar(select(User.id).where(User.user_name_norm == "w@x.io")) is None
    projected = scim.post("/Users", user_body("p@x.io"), params={"attributes": "userName"})
    assert projected.status_code == 201
    assert set(projected.json()) == {"schemas", "id", "userName"}


def test_concurrent_creates_keep_revisions_gap_free(pg_database: Database) -> None:
    """Creates racing on a live server: one 201 per userName, every other one 409, and
    the organization's revisions are exactly 1..n with one change row each."""
    with pg_database.write() as session:
        org = get_or_create_org(session, "race-lane")
        token = create_scim_token(session, org)
        org_id = org.id
    app = create_app(make_settings(), db=pg_database)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    names = [f"n{i % 12}@x.io" for i in range(48)]  # each name four times
    with live_server(app) as base:
        with httpx.Client(base_url=f"{base}/scim/v2", headers=headers) as c:
            assert c.get("/Users", params={"count": 0}).status_code == 200  # token touched

        def create(name: str) -> int:
            with httpx.Client(base_url=f"{base}/scim/v2", headers=headers) as own:
                return own.post("/Users", json=user_body(name)).status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(create, names))
    assert sorted(statuses) == [201] * 12 + [409] * 36
    with pg_database.read() as s:
        revisions = list(
            s.scalars(
                select(Change.revision).where(Change.org_id == org_id).order_by(Change.revision)
            )
        )
        org_row = s.get(Organization, org_id)
        assert org_row is not None
    assert revisions == list(range(1, 13)) and org_row.revision == 12
