"""The keyed lane (PostgreSQL): lookups answered on the event loop are exactly what the
thread path answers, it serves what it claims to, and it survives dead connections and
an unreachable database the way the thread path does."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from idsync.app import create_app
from models.db import session as session_settings
from models.db.database import Database
from models.db.tokens import create_scim_token, get_or_create_org, revoke_token
from scim.keyed_lane import KeyedLane
from tests.support.scim_client import Scim, group_body, make_settings, user_body
from tests.support.statements import recording_event_loop, thread_path_only
from tests.support.tcpproxy import TcpProxy

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


@dataclass
class Paths:
    """Which path ran the statements of the requests made inside `recording`."""

    lane: list[str] = field(default_factory=list)
    thread: list[str] = field(default_factory=list)


@dataclass
class LaneApp:
    scim: Scim
    other: Scim  # a second organization
    db: Database
    lane: KeyedLane

    @contextmanager
    def recording(self) -> Iterator[Paths]:
        paths = Paths()

        def record(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
            paths.thread.append(statement)

        event.listen(self.db.engine, "before_cursor_execute", record)
        try:
            with recording_event_loop(self.lane.pg, paths.lane):
                yield paths
        finally:
            event.remove(self.db.engine, "before_cursor_execute", record)

    @contextmanager
    def thread_path_only(self) -> Iterator[None]:
        with thread_path_only(self.lane.pg):
            yield


def _app(db: Database, **settings: Any) -> Iterator[LaneApp]:
    with db.write() as session:
        org = get_or_create_org(session, "lane-a")
        other = get_or_create_org(session, "lane-b")
        token, other_token = create_scim_token(session, org), create_scim_token(session, other)
        ids = (org.id, other.id)
    app = create_app(make_settings(**settings), db=db)
    with TestClient(app, base_url="http://idsync.test") as client:
        lane = app.state.scim.lane
        assert lane is not None
        yield LaneApp(Scim(client, token, ids[0]), Scim(client, other_token, ids[1]), db, lane)


@pytest.fixture
def lane_app(pg_database: Database) -> Iterator[LaneApp]:
    yield from _app(pg_database)


def _answer(r: Any) -> tuple[int, Any, str | None, str | None]:
    body = r.json() if r.content else None
    return r.status_code, body, r.headers.get("etag"), r.headers.get("location")


def test_lookups_answer_as_the_thread_path_does_and_run_on_the_loop(lane_app: LaneApp) -> None:
    scim = lane_app.scim
    manager = scim.post("/Users", user_body("boss@x.io")).json()["id"]
    ada = scim.post(
        "/Users",
        user_body(
            "Ada@X.io",
            externalId="shared",
            title="Engineer",
            **{ENTERPRISE: {"employeeNumber": "7", "manager": {"value": manager}}},
        ),
    ).json()["id"]
    for i in range(3):
        scim.post("/Users", user_body(f"more{i}@x.io", externalId="shared"))
    gid = scim.post("/Groups", group_body("Admins", [ada, manager])).json()["id"]
    scim.post("/Groups", group_body("Empty"))
    lane_app.other.post("/Users", user_body("ada@x.io"))  # same name, other organization

    lookups: list[tuple[str, dict[str, Any], dict[str, str]]] = [
        ("/Users", {"filter": 'userName eq "ada@x.io"'}, {}),
        ("/Users", {"filter": 'USERNAME EQ "ADA@X.IO"', "count": 1}, {}),
        ("/Users", {"filter": f'id eq "{ada}"', "attributes": "userName,groups"}, {}),
        ("/Users", {"filter": 'userName eq "ada@x.io"', "excludedAttributes": "groups"}, {}),
        ("/Users", {"filter": 'userName eq "nobody@x.io"'}, {}),
        ("/Users", {"filter": 'externalId eq "shared"', "count": 10}, {}),
        ("/Groups", {"filter": 'displayName eq "admins"', "excludedAttributes": "members"}, {}),
        ("/Groups", {"filter": 'displayName eq "Empty"', "attributes": "displayName"}, {}),
        (f"/Users/{ada}", {}, {}),
        (f"/Users/{ada}", {"attributes": f"{ENTERPRISE}:manager,name.givenName"}, {}),
        (f"/Users/{manager}", {"excludedAttributes": "groups,emails"}, {}),
        (f"/Groups/{gid}", {"excludedAttributes": "members"}, {}),
        ("/Users/no-such-id", {}, {}),
        (f"/Groups/{ada}", {"excludedAttributes": "members"}, {}),  # a user's id: 404
    ]
    # Warm the token (its once-a-minute last_used_at write takes the thread path).
    scim.get("/Users", params={"filter": 'userName eq "warm"'})
    for path, params, headers in lookups:
        with lane_app.recording() as paths:
            on_loop = scim.get(path, params=params, headers=headers)
        with lane_app.thread_path_only():
            threaded = scim.get(path, params=params, headers=headers)
        assert _answer(on_loop) == _answer(threaded), (path, params)
        assert paths.thread == [], (path, params, paths.thread)
        assert len(paths.lane) == 1, (path, params)

    tag = scim.get(f"/Users/{ada}").headers["etag"]
    with lane_app.recording() as paths:
        cached = scim.get(f"/Users/{ada}", headers={"If-None-Match": f'W/"0", {tag}'})
    assert cached.status_code == 304 and cached.headers["etag"] == tag
    assert paths.thread == []


def test_what_the_lane_does_not_answer_takes_the_thread_path(lane_app: LaneApp) -> None:
    scim = lane_app.scim
    uid = scim.post("/Users", user_body("ada@x.io", externalId="dup")).json()["id"]
    scim.post("/Users", user_body("bob@x.io", externalId="dup"))
    gid = scim.post("/Groups", group_body("Admins", [uid])).json()["id"]
    scim.get("/Users", params={"filter": 'userName eq "warm"'})
    thread_path: list[tuple[str, dict[str, Any]]] = [
        ("/Users", {"filter": 'userName sw "ada"'}),  # not a keyed lookup
        ("/Users", {"filter": 'userName eq "ada@x.io"', "sortBy": "userName"}),
        ("/Users", {"filter": 'userName eq "ada@x.io"', "cursor": ""}),
        ("/Users", {"filter": 'userName eq "ada@x.io"', "count": 0}),
        ("/Users", {"filter": 'externalId eq "dup"', "count": 1}),  # total unknown
        ("/Users", {"filter": 'userName eq "ada@x.io"', "startIndex": 2}),  # past the end
        ("/Groups", {"filter": 'displayName eq "Admins"'}),  # members wanted
        (f"/Groups/{gid}", {}),
    ]
    for path, params in thread_path:
        with lane_app.recording() as paths:
            r = scim.get(path, params=params)
        assert r.status_code == 200, (path, params, r.text)
        assert paths.thread, (path, params)
    counted = scim.get("/Users", params={"filter": 'externalId eq "dup"', "count": 1}).json()
    assert counted["totalResults"] == 2 and len(counted["Resources"]) == 1
    members = scim.get(f"/Groups/{gid}").json()["members"]
    assert [m["value"] for m in members] == [uid]
    # Errors come from the thread path, after authentication, exactly as without the lane.
    for params in ({"filter": 'userName eq "x" and'}, {"filter": 'userName eq "x"', "count": "x"}):
        bad = scim.get("/Users", params=params)
        assert bad.status_code == 400 and bad.json()["scimType"] in (
            "invalidFilter",
            "invalidValue",
        )
        wrong = scim.client.get(
            "/scim/v2/Users", params=params, headers={"Authorization": "Bearer idsync_scim_nope"}
        )
        assert wrong.status_code == 401


def test_tokens_on_the_lane(pg_database: Database) -> None:
    """With the token cache off, the lane verifies every token itself (one prebuilt
    lookup, hash compared in constant time); unknown and revoked tokens get 401, and
    one organization's token never finds another's users."""
    for lane_app in _app(pg_database, IDSYNC_SCIM_TOKEN_CACHE_S=0):
        scim, other = lane_app.scim, lane_app.other
        uid = scim.post("/Users", user_body("ada@x.io")).json()["id"]  # last_used_at now
        other.get("/Users", params={"count": 0})  # and the other token's
        with lane_app.recording() as paths:
            found = scim.get("/Users", params={"filter": 'userName eq "ada@x.io"'})
            mine = scim.get(f"/Users/{uid}")
            not_theirs = other.get(f"/Users/{uid}")
            theirs = other.get("/Users", params={"filter": 'userName eq "ada@x.io"'})
        assert found.json()["totalResults"] == 1 and mine.status_code == 200
        assert not_theirs.status_code == 404
        assert theirs.json()["totalResults"] == 0
        assert paths.thread == [] and len(paths.lane) == 8  # token + lookup, each
        for bad in ("idsync_scim_unknown", "not-even-a-scim-token", scim.token + "x"):
            r = scim.client.get(f"/scim/v2/Users/{uid}", headers={"Authorization": f"Bearer {bad}"})
            assert r.status_code == 401 and r.json()["status"] == "401"
        with pg_database.write() as session:
            prefix = scim.token[:20]
            assert revoke_token(session, prefix) == 1
        gone = scim.get("/Users", params={"filter": 'userName eq "ada@x.io"'})
        assert gone.status_code == 401


def test_dead_pooled_connections_are_replaced(
    lane_app: LaneApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    scim = lane_app.scim
    uid = scim.post("/Users", user_body("ada@x.io")).json()["id"]
    scim.get(f"/Users/{uid}")
    monkeypatch.setattr(session_settings, "PING_AFTER_IDLE_S", 3600.0)  # no ping: a retry
    with lane_app.recording() as paths:
        assert scim.get(f"/Users/{uid}").status_code == 200
    assert paths.thread == []
    with lane_app.db.engine.connect() as conn:  # kill every other backend of this database
        killed = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
        conn.commit()
    assert killed >= 1
    with lane_app.recording() as paths:
        again = scim.get(f"/Users/{uid}")
    assert again.status_code == 200, again.text
    assert paths.thread == [] and len(paths.lane) == 1
    monkeypatch.setattr(session_settings, "PING_AFTER_IDLE_S", 0.0)  # ping before use
    with lane_app.db.engine.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        conn.commit()
    assert scim.get(f"/Users/{uid}").status_code == 200


def test_unreachable_database_is_503_and_recovers(pg_database: Database, pg_url: str) -> None:
    url = make_url(pg_url)  # pg_database: the schema, clean
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    db = Database(proxied, pool_size=2)
    try:
        for lane_app in _app(db):
            scim = lane_app.scim
            uid = scim.post("/Users", user_body("ada@x.io")).json()["id"]
            assert scim.get(f"/Users/{uid}").status_code == 200  # token now remembered
            proxy.stop()
            with lane_app.recording() as paths:
                down = scim.get(f"/Users/{uid}")
            assert paths.lane and paths.thread == []  # the lane itself answered 503
            assert down.status_code == 503, down.text
            assert down.json()["status"] == "503" and down.headers["retry-after"] == "5"
            proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
            proxy.port = make_url(proxied).port or 0
            proxy.start()
            assert scim.get(f"/Users/{uid}").status_code == 200
    finally:
        proxy.stop()
        db.dispose()


def test_without_the_lifespan_every_request_takes_the_thread_path(
    pg_database: Database,
) -> None:
    with pg_database.write() as session:
        token = create_scim_token(session, get_or_create_org(session, "no-lifespan"))
    app = create_app(make_settings(), db=pg_database)
    client = TestClient(app, base_url="http://idsync.test")  # no `with`: no lifespan
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    made = client.post("/scim/v2/Users", json=user_body("ada@x.io"), headers=headers)
    assert made.status_code == 201
    found = client.get(
        "/scim/v2/Users", params={"filter": 'userName eq "ada@x.io"'}, headers=headers
    )
    assert found.status_code == 200 and found.json()["totalResults"] == 1
    assert not app.state.scim.pg.serves_this_loop()
