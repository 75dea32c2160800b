"""SCIM has one request path on both backends: mounted as ordinary routes of the app
(every middleware sees every SCIM request), and one implementation per operation. What
the former PostgreSQL event-loop paths guaranteed, the one path holds on PostgreSQL and
SQLite alike: refusals write nothing, listeners hear a write only after its COMMIT (in a
worker thread, never on the event loop), and creates racing on one userName get one 201
and 409s, with gap-free revisions."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from starlette.types import Receive, Scope, Send

from idsync.app import create_app
from idsync.http_middleware import HttpMiddleware
from models.db.database import CommittedChange, Database
from models.db.tables import Change, Organization, User
from models.db.tokens import create_scim_token, get_or_create_org
from tests.support.live_server import live_server
from tests.support.scim_client import Scim, make_settings, user_body

SCIM_JSON = "application/scim+json"


class Seen(HttpMiddleware):
    """A pure ASGI middleware that notes the path and status of every request."""

    log: ClassVar[list[tuple[str, int]]] = []

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def noting(message: Any) -> None:
            if message["type"] == "http.response.start":
                Seen.log.append((scope["path"], int(message["status"])))
            await send(message)

        await self.app(scope, receive, noting)


def _org(database: Database, name: str) -> tuple[str, str]:
    with database.write() as session:
        org = get_or_create_org(session, name)
        return org.id, create_scim_token(session, org)


def _revision(database: Database, org_id: str) -> int:
    with database.read() as s:
        org = s.get(Organization, org_id)
        assert org is not None
        return org.revision


def test_every_middleware_sees_scim_requests(database: Database) -> None:
    """A middleware added to the app sees SCIM requests, routing errors included, which
    keep the SCIM Error schema; the request metrics count them by route template."""
    _, token = _org(database, "seen")
    app = create_app(make_settings(), db=database)
    app.add_middleware(Seen)
    Seen.log = []
    headers = {"Authorization": f"Bearer {token}", "Content-Type": SCIM_JSON}
    with TestClient(app, base_url="http://idsync.test") as client:
        made = client.post("/scim/v2/Users", json=user_body("seen@x.io"), headers=headers)
        assert made.status_code == 201, made.text
        uid = made.json()["id"]
        assert client.get(f"/scim/v2/Users/{uid}", headers=headers).status_code == 200
        unknown = client.get("/scim/v2/Nope", headers=headers)
        wrong = client.delete("/scim/v2/Users", headers=headers)
        metrics = client.get("/metrics").text
    for response, status in ((unknown, 404), (wrong, 405)):
        assert response.status_code == status
        assert response.headers["content-type"].startswith(SCIM_JSON)
        body = response.json()
        assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
        assert body["status"] == str(status)
    assert Seen.log[:4] == [
        ("/scim/v2/Users", 201),
        (f"/scim/v2/Users/{uid}", 200),
        ("/scim/v2/Nope", 404),
        ("/scim/v2/Users", 405),
    ]
    assert 'route="/scim/v2/Users/{id}"' in metrics


@pytest.fixture
def heard(database: Database) -> Iterator[list[tuple[list[CommittedChange], str]]]:
    """What the database's listeners are told, and in which thread: each call checks, on
    a connection of its own, that the change it is told about has committed."""
    calls: list[tuple[list[CommittedChange], str]] = []

    def listener(changes: list[CommittedChange]) -> None:
        with database.read() as s:
            committed = select(Change.id).where(
                Change.org_id == changes[0].org_id, Change.revision == changes[0].revision
            )
            assert s.scalar(committed) is not None
        calls.append((changes, threading.current_thread().name))

    database.add_listener(listener)
    try:
        yield calls
    finally:
        database.remove_listener(listener)


def test_refusals_write_nothing_and_listeners_hear_commits(
    database: Database, heard: list[tuple[list[CommittedChange], str]]
) -> None:
    org_id, token = _org(database, "refusals")
    app = create_app(make_settings(), db=database)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": SCIM_JSON}
    with TestClient(app, base_url="http://idsync.test") as client:
        scim = Scim(client, token, org_id)
        assert scim.post("/Users", user_body("taken@x.io")).status_code == 201
        ((changes, thread),) = heard
        assert [c.kind for c in changes] == ["user.created"]
        assert thread != threading.main_thread().name  # a worker thread, not the loop's
        before = _revision(database, org_id)
        refusals: list[tuple[bytes, dict[str, str], int, str | None]] = [
            (b'{"userName": "TAKEN@x.io"}', {}, 409, "uniqueness"),
            (b'{"userName": ', {}, 400, "invalidSyntax"),
            (b'{"name": {"givenName": "no userName"}}', {}, 400, None),
            (b'{"userName": "x@x.io", "active": "maybe"}', {}, 400, None),
            (b'{"userName": "y@x.io"}', {"count": "x"}, 400, "invalidValue"),
            (b'{"userName": "z\\u0000@x.io"}', {}, 400, "invalidValue"),
        ]
        for raw, params, status, scim_type in refusals:
            r = client.post("/scim/v2/Users", content=raw, params=params, headers=headers)
            assert r.status_code == status, (raw, r.text)
            if scim_type is not None:
                assert r.json()["scimType"] == scim_type, (raw, r.text)
        unknown = client.post(
            "/scim/v2/Users",
            content=b'{"userName": "w@x.io"}',
            headers={**headers, "Authorization": "Bearer idsync_scim_unknown"},
        )
        assert unknown.status_code == 401
        assert _revision(database, org_id) == before and len(heard) == 1
        with database.read() as s:
            assert s.scalar(select(User.id).where(User.user_name_norm == "w@x.io")) is None
        projected = scim.post("/Users", user_body("p@x.io"), params={"attributes": "userName"})
        assert projected.status_code == 201
        assert set(projected.json()) == {"schemas", "id", "userName"}


def test_concurrent_creates_keep_revisions_gap_free(database: Database) -> None:
    """Creates racing on a live server: one 201 per userName, every other one 409, and
    the organization's revisions are exactly 1..n with one change row each."""
    org_id, token = _org(database, "race")
    app = create_app(make_settings(), db=database)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": SCIM_JSON}
    names = [f"n{i % 12}@x.io" for i in range(48)]  # each name four times
    with live_server(app) as base:
        with httpx.Client(base_url=f"{base}/scim/v2", headers=headers) as c:
            assert c.get("/Users", params={"count": 0}).status_code == 200  # token touched

        def create(name: str) -> int:
            with httpx.Client(base_url=f"{base}/scim/v2", headers=headers, timeout=30) as own:
                return own.post("/Users", json=user_body(name)).status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(create, names))
    assert sorted(statuses) == [201] * 12 + [409] * 36
    with database.read() as s:
        query = select(Change.revision).where(Change.org_id == org_id)
        revisions = list(s.scalars(query.order_by(Change.revision)))
    assert revisions == list(range(1, 13)) and _revision(database, org_id) == 12
