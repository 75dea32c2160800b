"""DELETE of a user racing a write that makes them a group member (PostgreSQL).

Issue 10 #6: a PATCH adding a user to a group while the user's DELETE was in flight
answered 500 (IntegrityError: the membership row's foreign key to a user deleted under
it). The membership write now locks the users it adds (FOR KEY SHARE) before checking
that they exist, so whichever transaction locks the user row first wins cleanly: the
DELETE first → the add is 400 invalidValue (unknown user), nothing written; the add
first → the DELETE waits for it and then removes the new membership with the user.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from idsync.app import create_app
from models.db.database import Database
from models.db.tables import Change, GroupMember
from models.db.tokens import create_scim_token, get_or_create_org
from scim.context import ScimContext
from scim.errors import InvalidValue
from scim.groups import create_group, patch_group, replace_group
from scim.users import create_user, delete_user
from tests.support.live_server import live_server
from tests.support.scim_client import group_body, make_settings, user_body

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _ctx(db: Database, name: str) -> ScimContext:
    with db.write() as session:
        org = get_or_create_org(session, name)
        return ScimContext(org.id, "test", "http://idsync.test/scim/v2")


def _seed(db: Database, ctx: ScimContext) -> tuple[str, str]:
    """A user and an empty group; returns (user id, group id)."""
    with db.write() as session:
        uid = create_user(session, ctx, user_body("racer@x.io")).id
        gid = create_group(session, ctx, group_body("racers")).id
    return uid, gid


def _kinds(db: Database, org_id: str) -> list[tuple[int, str]]:
    with db.read() as session:
        rows = session.scalars(select(Change).where(Change.org_id == org_id).order_by(Change.id))
        return [(c.revision, c.kind) for c in rows]


def _memberships(db: Database, user_id: str) -> int:
    with db.read() as session:
        rows = session.scalars(select(GroupMember).where(GroupMember.user_id == user_id))
        return len(list(rows))


def _wait_until_blocked(db: Database, waiters: int = 1) -> None:
    """Until `waiters` backends of this database wait for a row lock (bounded: 10 s)."""
    deadline = time.monotonic() + 10
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    with db.engine.connect() as conn:
        while time.monotonic() < deadline:
            if int(conn.execute(query).scalar_one()) >= waiters:
                return
            conn.rollback()
            time.sleep(0.02)
    raise AssertionError("the second transaction never waited for the first")


def _in_thread(db: Database, write: Callable[[Session], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run `write` in its own transaction on a thread; the list gets its result or error."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            with db.write() as session:
                outcome.append(write(session))
        except Exception as exc:  # handed to the test, which asserts on it
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _add(ctx: ScimContext, gid: str, uid: str) -> Callable[[Session], Any]:
    body = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}],
    }
    return lambda session: patch_group(session, ctx, gid, body, None)


def _replace(ctx: ScimContext, gid: str, uid: str) -> Callable[[Session], Any]:
    body = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "members", "value": [{"value": uid}]}],
    }
    return lambda session: patch_group(session, ctx, gid, body, None)


def _put(ctx: ScimContext, gid: str, uid: str) -> Callable[[Session], Any]:
    return lambda session: replace_group(session, ctx, gid, group_body("racers", [uid]), None)


def _post(ctx: ScimContext, gid: str, uid: str) -> Callable[[Session], Any]:
    return lambda session: create_group(session, ctx, group_body("racers-2", [uid]))


Write = Callable[[ScimContext, str, str], Callable[[Session], Any]]
WRITES: list[tuple[Write, str]] = [
    (_add, "group.members_changed"),
    (_replace, "group.members_changed"),
    (_put, "group.members_changed"),  # the same name: only the members' change row
    (_post, "group.created"),
]
IDS = ["patch-add", "patch-replace", "put", "post"]


@pytest.mark.parametrize("write", [w for w, _ in WRITES], ids=IDS)
def test_delete_first_makes_the_member_write_a_400(pg_database: Database, write: Write) -> None:
    db = pg_database
    ctx = _ctx(db, "race-delete-first")
    uid, gid = _seed(db, ctx)
    with db.sessions() as deleting:
        with deleting.begin():
            delete_user(deleting, ctx, uid, None)  # holds the user row lock until commit
            thread, outcome = _in_thread(db, write(ctx, gid, uid))
            _wait_until_blocked(db)
        thread.join(timeout=20)
    assert not thread.is_alive()
    [error] = outcome
    assert isinstance(error, InvalidValue), repr(error)
    assert uid in error.detail
    assert _memberships(db, uid) == 0
    # The failed write left no change row and took no revision.
    assert _kinds(db, ctx.org_id) == [
        (1, "user.created"),
        (2, "group.created"),
        (3, "user.deleted"),
    ]


@pytest.mark.parametrize(("write", "kind"), WRITES, ids=IDS)
def test_member_write_first_makes_the_delete_remove_the_membership(
    pg_database: Database, write: Write, kind: str
) -> None:
    db = pg_database
    ctx = _ctx(db, "race-add-first")
    uid, gid = _seed(db, ctx)
    with db.sessions() as adding:
        with adding.begin():
            group = write(ctx, gid, uid)(adding)
            thread, outcome = _in_thread(db, lambda s: delete_user(s, ctx, uid, None))
            _wait_until_blocked(db)
        thread.join(timeout=20)
    assert not thread.is_alive()
    assert outcome == [None]
    assert _memberships(db, uid) == 0
    assert _kinds(db, ctx.org_id) == [
        (1, "user.created"),
        (2, "group.created"),
        (3, kind),
        (4, "user.deleted"),
    ]
    with db.read() as session:
        deleted = session.scalars(select(Change).where(Change.kind == "user.deleted")).one()
    assert deleted.group_ids == [group.id]


def _race(
    pool: ThreadPoolExecutor, patcher: httpx.Client, deleter: httpx.Client, gid: str, uid: str
) -> tuple[httpx.Response, httpx.Response]:
    """PATCH (add `uid` to `gid`) and DELETE `uid`, released at the same instant."""
    body = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}],
    }
    start = threading.Barrier(2, timeout=10)

    def patch() -> httpx.Response:
        start.wait()
        return patcher.patch(f"/Groups/{gid}", json=body)

    def delete() -> httpx.Response:
        start.wait()
        return deleter.delete(f"/Users/{uid}")

    patched, deleted = pool.submit(patch), pool.submit(delete)
    return patched.result(timeout=30), deleted.result(timeout=30)


def test_delete_racing_member_add_over_http_never_500s(pg_database: Database) -> None:
    """The issue's reproduction: two real HTTP requests at once, many trials."""
    with pg_database.write() as session:
        org = get_or_create_org(session, "race-http")
        token = create_scim_token(session, org)
        org_id = org.id
    app = create_app(make_settings(), db=pg_database)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    trials = 15
    outcomes: list[tuple[int, int]] = []
    with (
        live_server(app) as base,
        httpx.Client(base_url=f"{base}/scim/v2", headers=headers, timeout=30) as c,
        httpx.Client(base_url=f"{base}/scim/v2", headers=headers, timeout=30) as patcher,
        httpx.Client(base_url=f"{base}/scim/v2", headers=headers, timeout=30) as deleter,
        ThreadPoolExecutor(max_workers=2) as pool,
    ):
        for trial in range(trials):
            uid = c.post("/Users", json=user_body(f"race{trial}@x.io")).json()["id"]
            gid = c.post("/Groups", json=group_body(f"race-{trial}")).json()["id"]
            p, d = _race(pool, patcher, deleter, gid, uid)
            assert d.status_code == 204, d.text
            assert p.status_code in (204, 400), p.text
            if p.status_code == 400:
                assert p.json()["scimType"] == "invalidValue"
            group = c.get(f"/Groups/{gid}").json()
            assert group.get("members", []) == []
            assert c.get(f"/Users/{uid}").status_code == 404
            outcomes.append((p.status_code, d.status_code))
        kinds = _kinds(pg_database, org_id)
    # Revisions are gapless, and only the adds that succeeded recorded a change.
    assert [r for r, _ in kinds] == list(range(1, len(kinds) + 1))
    added = sum(1 for p, _ in outcomes if p == 204)
    assert [k for _, k in kinds].count("group.members_changed") == added
    assert [k for _, k in kinds].count("user.deleted") == trials
