"""IdP connections run by a real Celery worker and a real beat (PostgreSQL, Redis), against
a SCIM upstream on localhost with one tenant per organization (tests.support.fake_idp):
two organizations pull on schedule with their own credentials, runs and status; a slow
and a failing IdP delay no other organization; the admin API's "run now" and dry run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from idsync.app import create_app
from idsync.sync_status import sync_status
from models.db.admin_keys import create_admin_key
from models.db.database import Database
from models.db.idp_connections import ConnectionSpec, create_connection
from models.db.observability_tables import IdpPullRun
from models.db.tables import Change, Organization, User
from models.db.tokens import get_or_create_org
from models.secret_box import SecretBox, generate_key
from models.settings import Settings
from tests.integration.worker.conftest import BROKER_URL, CACHE_URL, ROOT, WorkerProcess, wait_until
from tests.support.fake_idp import FakeIdp
from tests.support.live_server import live_server


@contextmanager
def beat(workers: WorkerProcess, log: Path, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "idsync.cli", "beat"],
        cwd=ROOT,
        env=workers.env(IDSYNC_IDP_DISPATCH_INTERVAL_S="1", **env),
        stdout=open(log, "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)


def _org(db: Database, name: str) -> str:
    with db.write() as s:
        return get_or_create_org(s, name).id


def _connect(db: Database, org_id: str, url: str, token: str | None, key: str, **kw: object) -> str:
    spec = ConnectionSpec(kind="scim", url=url, **kw)  # type: ignore[arg-type]
    with db.write() as s:
        return create_connection(s, org_id, spec, token, SecretBox(key)).id


def _users(db: Database, org_id: str) -> dict[str, bool]:
    with db.read() as s:
        rows = s.execute(select(User.user_name, User.active).where(User.org_id == org_id))
        return {name: bool(active) for name, active in rows}


def _runs(db: Database, connection: str) -> list[IdpPullRun]:
    with db.read() as s:
        return list(
            s.scalars(
                select(IdpPullRun)
                .where(IdpPullRun.connection == connection)
                .order_by(IdpPullRun.id)
            )
        )


def test_two_organizations_pull_on_schedule_with_their_own_credentials(
    workers: WorkerProcess, pg_database: Database, tmp_path: Path
) -> None:
    idp = FakeIdp()
    acme_idp = idp.tenant("acme", "tok-acme")
    acme_idp.user("a1", "ann@acme.test")
    acme_idp.user("a2", "abe@acme.test")
    acme_idp.group("ga", "eng", ["a1", "a2"])
    globex_idp = idp.tenant("globex", "tok-globex")
    globex_idp.user("g1", "gus@globex.test")
    key = generate_key()
    db = pg_database
    acme, globex = _org(db, "acme"), _org(db, "globex")
    with live_server(idp.app()) as base:
        conn_a = _connect(
            db,
            acme,
            f"{base}/acme/scim/v2",
            "tok-acme",
            key,
            interval_s=5,
            deactivate_missing=True,
        )
        conn_g = _connect(db, globex, f"{base}/globex/scim/v2", "tok-globex", key, interval_s=5)
        workers.start(IDSYNC_SECRET_KEY=key)
        with beat(workers, tmp_path / "beat.log", IDSYNC_SECRET_KEY=key):
            wait_until(lambda: _users(db, acme) == {"ann@acme.test": True, "abe@acme.test": True})
            wait_until(lambda: _users(db, globex) == {"gus@globex.test": True})
            # the next slot brings upstream changes: a new user, a user gone (deactivated)
            acme_idp.users = [u for u in acme_idp.users if u["id"] != "a2"]
            acme_idp.user("a3", "amy@acme.test")
            acme_idp.groups[0]["members"] = [{"value": "a1"}, {"value": "a3"}]
            wait_until(
                lambda: (
                    _users(db, acme)
                    == {"ann@acme.test": True, "abe@acme.test": False, "amy@acme.test": True}
                ),
                timeout=40,
            )
    # separate credentials: each upstream saw only its own token
    assert {auth for _, auth in acme_idp.seen} == {"Bearer tok-acme"}
    assert {auth for _, auth in globex_idp.seen} == {"Bearer tok-globex"}
    # separate runs, each recorded under its organization with its counts
    runs_a, runs_g = _runs(db, conn_a), _runs(db, conn_g)
    assert {r.org_id for r in runs_a} == {acme} and {r.org_id for r in runs_g} == {globex}
    first = runs_a[0]
    assert (first.status, first.users_created, first.groups_created, first.members_added) == (
        "ok",
        2,
        1,
        2,
    )
    changed = next(r for r in runs_a if r.users_deactivated)
    assert (changed.users_created, changed.users_deactivated) == (1, 1)
    assert (changed.members_added, changed.members_removed) == (1, 1)
    assert all(r.status == "ok" for r in runs_a + runs_g if r.finished_at is not None)
    # separate status: each organization sees its own connection only
    status_a = sync_status(db, acme, None)
    status_g = sync_status(db, globex, None)
    assert [c["connection"] for c in status_a["idp_connections"]] == [conn_a]
    assert [c["connection"] for c in status_g["idp_connections"]] == [conn_g]
    assert status_a["idp_connections"][0]["verdict"]["state"] == "healthy"
    assert status_g["idp_connections"][0]["last_run"]["status"] == "ok"
    assert runs_g[0].users_created == 1 and len(runs_g) >= 2  # on schedule, again and again
    with db.read() as s:
        actors = set(s.scalars(select(Change.actor).where(Change.org_id == globex)))
    assert actors == {"idp-pull:scim"}


def test_a_slow_and_a_failing_idp_delay_no_other_organization(
    workers: WorkerProcess, pg_database: Database, tmp_path: Path
) -> None:
    idp = FakeIdp()
    slow = idp.tenant("slow", "tok-slow")
    slow.user("s1", "sam@slow.test")
    slow.delay_s = 6.0  # every request: a directory that takes long to read
    failing = idp.tenant("failing", "tok-failing")
    fast = idp.tenant("fast", "tok-fast")
    fast.user("f1", "fay@fast.test")
    fast.throttle = 1  # one 429 with Retry-After: 1 first
    key = generate_key()
    db = pg_database
    orgs = {name: _org(db, name) for name in ("slow", "failing", "fast")}
    with live_server(idp.app()) as base:
        conns = {
            name: _connect(
                db,
                org_id,
                f"{base}/{name}/scim/v2",
                "wrong-token" if name == "failing" else f"tok-{name}",
                key,
                interval_s=3600,
            )
            for name, org_id in orgs.items()
        }
        workers.start(concurrency=3, IDSYNC_SECRET_KEY=key)
        with beat(workers, tmp_path / "beat.log", IDSYNC_SECRET_KEY=key):
            wait_until(lambda: _users(db, orgs["fast"]) == {"fay@fast.test": True})
            fast_run = wait_until(lambda: [r for r in _runs(db, conns["fast"]) if r.finished_at])
            assert fast_run[0].status == "ok"
            # the slow organization's run is still reading while the fast one is done
            slow_runs = _runs(db, conns["slow"])
            assert [r.status for r in slow_runs] == ["running"]
            failed = wait_until(lambda: [r for r in _runs(db, conns["failing"]) if r.finished_at])
            assert failed[0].status == "failed" and failed[0].upstream_status == 401
            wait_until(lambda: _users(db, orgs["slow"]) == {"sam@slow.test": True}, timeout=60)
    # Retry-After honoured: the fast upstream's retry came about a second after the 429
    (t429, _), (t_ok, _) = fast.seen[0], fast.seen[1]
    assert t_ok - t429 >= 0.9
    # a permanent failure (401) is recorded once and acknowledged, not retried
    time.sleep(1.0)
    assert len(_runs(db, conns["failing"])) == 1
    assert len(failing.seen) == 1


def test_a_transient_upstream_failure_is_recorded_and_retried_by_the_task(
    workers: WorkerProcess, pg_database: Database, tmp_path: Path
) -> None:
    idp = FakeIdp()
    flaky = idp.tenant("flaky", "tok-flaky")
    flaky.user("f1", "flo@flaky.test")
    flaky.fail_first = 5  # every attempt of the HTTP client's first request
    key = generate_key()
    db = pg_database
    org_id = _org(db, "flaky")
    with live_server(idp.app()) as base:
        conn_id = _connect(db, org_id, f"{base}/flaky/scim/v2", "tok-flaky", key, interval_s=3600)
        workers.start(IDSYNC_SECRET_KEY=key)
        with beat(workers, tmp_path / "beat.log", IDSYNC_SECRET_KEY=key):
            wait_until(lambda: _users(db, org_id) == {"flo@flaky.test": True}, timeout=60)
    runs = _runs(db, conn_id)
    # one slot (interval 3600 s): the second run is the task's retry, not the schedule's
    assert [(r.status, r.upstream_status) for r in runs] == [("failed", 503), ("ok", None)]
    assert "giving up after 5 attempts" in (runs[0].error or "")


def test_run_now_and_dry_run_through_the_admin_api(
    workers: WorkerProcess, pg_database: Database, tmp_path: Path
) -> None:
    idp = FakeIdp()
    up = idp.tenant("acme", "tok-acme")
    up.user("a1", "ann@acme.test")
    up.group("ga", "eng", ["a1"])
    key = generate_key()
    db = pg_database
    with db.write() as s:
        org = get_or_create_org(s, "acme")
        admin_key = create_admin_key(s, org, "test")
        org_id = org.id
    settings = Settings(
        REDIS_URL=BROKER_URL,
        CACHE_REDIS_URL=CACHE_URL,
        IDSYNC_SECRET_KEY=key,
        IDSYNC_OUTBOUND_ALLOW_PRIVATE="true",  # the fake IdP listens on localhost
    )
    workers.start(IDSYNC_SECRET_KEY=key)
    headers = {"Authorization": f"Bearer {admin_key}"}
    with (
        live_server(idp.app()) as base,
        TestClient(create_app(settings, db=db), base_url="http://idsync.test") as client,
    ):
        made = client.post(
            "/api/v1/connections",
            json={
                "kind": "scim",
                "url": f"{base}/acme/scim/v2",
                "secret": "tok-acme",
                "enabled": False,  # run by hand only
            },
            headers=headers,
        )
        assert made.status_code == 201, made.text
        conn_id = made.json()["id"]

        def run(dry_run: bool) -> dict[str, object]:
            resp = client.post(
                f"/api/v1/connections/{conn_id}/run",
                params={"dry_run": str(dry_run).lower()},
                headers=headers,
            )
            assert resp.status_code == 202 and resp.json()["status"] == "queued", resp.text
            path = f"/api/v1/connections/{conn_id}/runs/{resp.json()['id']}"

            def done() -> dict[str, object] | None:
                body: dict[str, object] = client.get(path, headers=headers).json()
                return body if body["status"] not in ("queued", "running") else None

            finished: dict[str, object] = wait_until(done)
            return finished

        def changes() -> int:
            with db.read() as s:
                return int(s.scalar(select(func.count()).where(Change.org_id == org_id)) or 0)

        dry = run(dry_run=True)
        assert (dry["status"], dry["dry_run"], dry["users_created"]) == ("ok", True, 1)
        assert (dry["groups_created"], dry["members_added"]) == (1, 1)
        assert _users(db, org_id) == {} and changes() == 0  # nothing written
        real = run(dry_run=False)
        assert (real["status"], real["users_created"], real["members_added"]) == ("ok", 1, 1)
        assert _users(db, org_id) == {"ann@acme.test": True} and changes() == 2
        again = run(dry_run=True)
        assert (again["users_created"], again["users_updated"], again["groups_updated"]) == (
            0,
            0,
            0,
        )
        status = client.get("/api/v1/sync/status", headers=headers).json()
        (conn,) = status["idp_connections"]
        assert conn["last_run"]["status"] == "ok" and conn["last_run"]["users_created"] == 1
    with db.read() as s:
        assert s.scalar(select(Organization.name).where(Organization.id == org_id)) == "acme"
