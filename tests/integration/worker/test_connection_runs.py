"""Running a stored IdP connection (worker.idp.connection_runs) against respx-mocked
upstreams of each kind, on PostgreSQL and SQLite: the credential is decrypted from the
table and sent as that kind's auth, the run is recorded under its connection, a dry run
writes nothing, a missing key fails the run with one line naming it (the upstream is never
called), the connection's rate limit spaces its requests, and a held lease skips the run."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from sqlalchemy import func, select

import worker.runtime
from models.db.connection_tables import IdpConnection
from models.db.database import Database
from models.db.idp_connections import ConnectionSpec, create_connection, take_lease
from models.db.observability_tables import IdpPullRun
from models.db.tables import Change, Group, GroupMember, User
from models.secret_box import SecretBox, generate_key
from models.settings import Settings
from tests.conftest import REDIS_TEST_URL
from tests.integration.cache.world import World
from worker.beat import beat_schedule
from worker.broker import TASK_CONNECTION_PULL, TASK_DISPATCH_CONNECTIONS, TASK_PRUNE_PULL_RUNS
from worker.factory import create_celery
from worker.idp.connection_runs import run_connection
from worker.idp.lease_keeper import LeaseKeeper
from worker.idp.runs import queue_run

KEY = generate_key()
SECRET = "s3cret-credential-77"
SCIM = "https://idp.example.com/scim/v2"
OKTA = "https://acme.okta.com"
GRAPH = "https://graph.microsoft.com"
TOKEN_URL = "https://login.microsoftonline.com/tenant/oauth2/v2.0/token"


def _settings(key: str | None = KEY, *, guarded: bool = False) -> Settings:
    """The worker's settings; the outbound guard off unless ``guarded`` (respx answers
    for hosts that do not resolve here)."""
    allow = "false" if guarded else "true"
    if key:
        return Settings(IDSYNC_SECRET_KEY=key, IDSYNC_OUTBOUND_ALLOW_PRIVATE=allow)
    return Settings(IDSYNC_OUTBOUND_ALLOW_PRIVATE=allow)


def _connect(database: Database, org_id: str, kind: str, **kw: Any) -> str:
    url = {"scim": SCIM, "okta": OKTA, "graph": ""}[kind]
    extra: dict[str, Any] = (
        {"client_id": "app-1", "token_url": TOKEN_URL} if kind == "graph" else {}
    )
    spec = ConnectionSpec(kind=kind, url=url, **extra, **kw)
    with database.write() as s:
        return create_connection(s, org_id, spec, SECRET, SecretBox(KEY)).id


def _mock(kind: str) -> list[float]:
    """Two users and a group upstream; every request checks the decrypted credential."""
    times: list[float] = []

    def seen(request: httpx.Request, expected: str) -> None:
        times.append(time.monotonic())
        assert request.headers["Authorization"] == expected

    if kind == "scim":

        def scim(request: httpx.Request) -> httpx.Response:
            seen(request, f"Bearer {SECRET}")
            users = [
                {"id": "u1", "userName": "ann@x.test", "active": True},
                {"id": "u2", "userName": "bob@x.test", "active": True},
            ]
            groups = [{"id": "g1", "displayName": "eng", "members": [{"value": "u1"}]}]
            items = users if request.url.path.endswith("/Users") else groups
            start = int(request.url.params["startIndex"])
            page = items[start - 1 : start]  # one per page: several requests
            return httpx.Response(200, json={"totalResults": len(items), "Resources": page})

        respx.get(url__regex=rf"{SCIM}/(Users|Groups)").mock(side_effect=scim)
    elif kind == "okta":

        def okta(request: httpx.Request) -> httpx.Response:
            seen(request, f"SSWS {SECRET}")
            path = request.url.path
            if path == "/api/v1/users":
                body: list[dict[str, Any]] = [
                    {"id": "u1", "status": "ACTIVE", "profile": {"login": "ann@x.test"}},
                    {"id": "u2", "status": "ACTIVE", "profile": {"login": "bob@x.test"}},
                ]
            elif path == "/api/v1/groups":
                body = [{"id": "g1", "profile": {"name": "eng"}}]
            else:
                body = [{"id": "u1"}]
            return httpx.Response(200, json=body)

        respx.get(url__regex=rf"{OKTA}/api/v1/.*").mock(side_effect=okta)
    else:

        def token(request: httpx.Request) -> httpx.Response:
            form = parse_qs(request.content.decode())
            assert form["client_secret"] == [SECRET] and form["client_id"] == ["app-1"]
            return httpx.Response(200, json={"access_token": "graph-tok", "expires_in": 3600})

        def graph(request: httpx.Request) -> httpx.Response:
            seen(request, "Bearer graph-tok")
            path = request.url.path
            if path == "/v1.0/users":
                value: list[dict[str, Any]] = [
                    {"id": "u1", "userPrincipalName": "ann@x.test", "accountEnabled": True},
                    {"id": "u2", "userPrincipalName": "bob@x.test", "accountEnabled": True},
                ]
            elif path == "/v1.0/groups":
                value = [{"id": "g1", "displayName": "eng"}]
            else:
                value = [{"id": "u1"}]
            return httpx.Response(200, json={"value": value})

        respx.post(TOKEN_URL).mock(side_effect=token)
        respx.get(url__regex=rf"{GRAPH}/v1\.0/.*").mock(side_effect=graph)
    return times


def _snapshot(database: Database, org_id: str) -> tuple[int, ...]:
    with database.read() as s:
        return tuple(
            int(s.scalar(select(func.count()).select_from(t).where(t.org_id == org_id)) or 0)
            for t in (User, Group, GroupMember, Change)
        )


@pytest.mark.parametrize("kind", ["scim", "okta", "graph"])
@respx.mock
def test_each_kind_runs_from_its_stored_encrypted_connection(database: Database, kind: str) -> None:
    w = World.create(database)
    conn_id = _connect(database, w.org_id, kind)
    _mock(kind)
    outcome = run_connection(database, _settings(), conn_id)
    assert outcome.status == "ok", outcome.error
    assert (outcome.report["users_created"], outcome.report["groups_created"]) == (2, 1)
    assert outcome.report["members_added"] == 1
    with database.read() as s:
        run = s.scalars(select(IdpPullRun)).one()
        names = set(s.scalars(select(User.user_name).where(User.org_id == w.org_id)))
    assert (run.connection, run.org_id, run.source, run.status) == (conn_id, w.org_id, kind, "ok")
    assert names == {"ann@x.test", "bob@x.test"}


@respx.mock
def test_a_dry_run_reports_the_changes_and_writes_nothing(database: Database) -> None:
    w = World.create(database)
    w.user("bob@x.test")  # adopted (externalId set): an update
    w.user("gone@x.test")
    with database.write() as s:
        gone = s.scalars(select(User).where(User.user_name == "gone@x.test")).one()
        gone.external_id = "u9"  # pulled earlier, missing upstream now
    conn_id = _connect(database, w.org_id, "okta", deactivate_missing=True)
    _mock("okta")
    before = _snapshot(database, w.org_id)
    with database.read() as s:
        users_before = {u.user_name: (u.active, u.attrs) for u in s.scalars(select(User))}
    outcome = run_connection(database, _settings(), conn_id, dry_run=True)
    assert outcome.status == "ok"
    r = outcome.report
    assert (r["dry_run"], r["users_created"], r["users_updated"], r["users_deactivated"]) == (
        True,
        1,
        1,
        1,
    )
    assert (r["groups_created"], r["members_added"]) == (1, 1)
    assert _snapshot(database, w.org_id) == before
    with database.read() as s:
        assert {u.user_name: (u.active, u.attrs) for u in s.scalars(select(User))} == users_before
        run = s.scalars(select(IdpPullRun)).one()
    assert run.dry_run and run.users_deactivated == 1
    real = run_connection(database, _settings(), conn_id)
    assert {k: real.report[k] for k in ("users_created", "users_updated", "users_deactivated")} == {
        "users_created": 1,
        "users_updated": 1,
        "users_deactivated": 1,
    }


@respx.mock
def test_a_missing_or_wrong_key_fails_the_run_in_one_line(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    w = World.create(database)
    conn_id = _connect(database, w.org_id, "okta")
    route = respx.get(url__regex=rf"{OKTA}/.*").mock(return_value=httpx.Response(200, json=[]))
    caplog.set_level(logging.DEBUG)
    missing = run_connection(database, _settings(None), conn_id)
    wrong = run_connection(database, _settings(generate_key()), conn_id)
    assert missing.status == wrong.status == "failed" and route.call_count == 0
    assert missing.error is not None and missing.error.startswith("IDSYNC_SECRET_KEY is not set")
    assert wrong.error is not None and "IDSYNC_SECRET_KEYS_OLD" in wrong.error
    with database.read() as s:
        errors = [r.error for r in s.scalars(select(IdpPullRun).order_by(IdpPullRun.id))]
    assert errors == [missing.error, wrong.error]
    assert SECRET not in caplog.text and KEY not in caplog.text
    assert "IDSYNC_SECRET_KEY is not set" in caplog.text


@respx.mock
def test_a_run_whose_worker_died_is_closed_by_the_next_run(database: Database) -> None:
    w = World.create(database)
    conn_id = _connect(database, w.org_id, "okta")
    _mock("okta")
    with database.write() as s:
        dead = IdpPullRun(org_id=w.org_id, connection=conn_id, source="okta", status="running")
        s.add(dead)
        s.flush()
        dead_id = dead.id
    assert run_connection(database, _settings(), conn_id).status == "ok"
    with database.read() as s:
        runs = {r.id: (r.status, r.error) for r in s.scalars(select(IdpPullRun))}
    assert runs.pop(dead_id) == (
        "failed",
        "interrupted: the worker running it stopped before it ended",
    )
    assert [status for status, _ in runs.values()] == ["ok"]


@respx.mock
def test_an_upstream_echoing_the_credential_is_masked_everywhere(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    w = World.create(database)
    conn_id = _connect(database, w.org_id, "scim")
    respx.get(url__regex=rf"{SCIM}/Users").mock(
        return_value=httpx.Response(403, text=f"Bearer {SECRET} is not allowed here")
    )
    caplog.set_level(logging.DEBUG)
    outcome = run_connection(database, _settings(), conn_id)
    assert outcome.status == "failed" and not outcome.transient
    with database.read() as s:
        run = s.scalars(select(IdpPullRun)).one()
    assert run.upstream_status == 403 and "[REDACTED]" in (run.error or "")
    assert SECRET not in str(outcome.as_dict()) and SECRET not in (run.error or "")
    assert SECRET not in caplog.text


@respx.mock
def test_the_connection_rate_limit_spaces_requests(database: Database) -> None:
    w = World.create(database)
    conn_id = _connect(database, w.org_id, "scim", rate_limit_per_s=10)
    times = _mock("scim")
    assert run_connection(database, _settings(), conn_id).status == "ok"
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) == 3 and min(gaps) >= 0.095  # 10/s: 0.1 s apart


@respx.mock
def test_a_held_lease_skips_the_run(database: Database) -> None:
    w = World.create(database)
    conn_id = _connect(database, w.org_id, "okta")
    route = respx.get(url__regex=rf"{OKTA}/.*").mock(return_value=httpx.Response(200, json=[]))
    with database.write() as s:
        assert take_lease(s, conn_id, "another-worker", 60)
    scheduled = run_connection(database, _settings(), conn_id)
    assert scheduled.status == "skipped" and route.call_count == 0
    queued = queue_run(database, w.org_id, "okta", conn_id, dry_run=False)
    asked = run_connection(database, _settings(), conn_id, queued=queued)
    assert asked.status == "skipped"
    with database.read() as s:
        runs = list(s.scalars(select(IdpPullRun)))
    assert [(r.id, r.status) for r in runs] == [(queued, "skipped")]  # only the asked-for one
    assert "in progress" in (runs[0].error or "")
    again = run_connection(database, _settings(), conn_id, queued=queued)
    assert again.status == "skipped" and "already ended" in (again.error or "")


def test_the_connection_task_is_long_running_on_its_queue_and_scheduled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Acknowledged on receipt with an hour's limits (not the short tasks' 20 s), routed
    to idsync.pull; the beat dispatches due connections and prunes their runs."""
    monkeypatch.setattr(worker.runtime, "_RUNTIME", None)
    settings = Settings(REDIS_URL=REDIS_TEST_URL, DATABASE_URL="sqlite://")
    app = create_celery(settings, REDIS_TEST_URL)
    task = app.tasks[TASK_CONNECTION_PULL]
    assert task.acks_late is False and task.soft_time_limit == 3600
    assert task.time_limit == 3660
    assert app.conf.task_routes[TASK_CONNECTION_PULL] == {"queue": "idsync.pull"}
    schedule = beat_schedule(Settings(IDSYNC_IDP_DISPATCH_INTERVAL_S="3"))
    assert schedule["idp-connections"] == {"task": TASK_DISPATCH_CONNECTIONS, "schedule": 3.0}
    assert schedule["idp-run-prune"]["task"] == TASK_PRUNE_PULL_RUNS


def test_a_run_keeps_its_lease_and_a_dead_one_lets_it_lapse(database: Database) -> None:
    w = World.create(database)
    conn_id = _connect(database, w.org_id, "okta")

    def lease_until() -> datetime:
        with database.read() as s:
            until = s.scalar(select(IdpConnection.lease_until).where(IdpConnection.id == conn_id))
        assert until is not None
        return until

    with database.write() as s:
        assert take_lease(s, conn_id, "run-1", 1.0)
    first = lease_until()
    with LeaseKeeper(database, conn_id, "run-1", 1.0, 0.2) as keeper:
        time.sleep(1.5)  # longer than the lease: renewed meanwhile
        with database.write() as s:
            assert not take_lease(s, conn_id, "run-2", 60)
    assert keeper.renewals >= 5 and lease_until() > first
    time.sleep(1.1)  # no renewals any more (the process "died"): the lease lapses
    with database.write() as s:
        assert take_lease(s, conn_id, "run-2", 60)
    with LeaseKeeper(database, conn_id, "run-1", 1.0, 0.1) as lost:
        time.sleep(0.3)
    assert lost.renewals == 1  # not the holder any more: it stops at once


def test_a_connection_into_the_deployment_s_network_is_never_called(database: Database) -> None:
    """A stored connection (an organization's admin chose its URL) goes through the
    outbound guard: a URL naming this host fails the run without a request, unless
    IDSYNC_OUTBOUND_ALLOW_PRIVATE."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(401)  # permanent: the run ends at once
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        w = World.create(database)
        spec = ConnectionSpec(kind="scim", url=f"http://localhost:{server.server_address[1]}/scim")
        with database.write() as s:
            conn_id = create_connection(s, w.org_id, spec, SECRET, SecretBox(KEY)).id
        outcome = run_connection(database, _settings(guarded=True), conn_id)
        assert outcome.status == "failed"
        assert outcome.error is not None and "not public" in outcome.error
        assert seen == []  # never reached
        allowed = run_connection(database, _settings(), conn_id)
        assert allowed.status == "failed" and seen  # called now (and answered 401)
    finally:
        server.shutdown()
        server.server_close()


@respx.mock
def test_a_retry_after_longer_than_a_run_waits_defers_the_next_run(database: Database) -> None:
    """A 429 asking for two minutes is honoured: no request before then (the run fails
    transiently at once, without in-place retries) and the connection's next run is
    moved past it; the task leaves it to the dispatcher."""
    w = World.create(database)
    conn_id = _connect(database, w.org_id, "okta")
    limited = respx.get(url__regex=rf"{OKTA}/api/v1/.*").mock(
        return_value=httpx.Response(429, headers={"Retry-After": "120"})
    )
    before = datetime.now(UTC)
    outcome = run_connection(database, _settings(), conn_id)
    assert outcome.status == "failed" and outcome.transient
    assert outcome.deferred_s == 120
    assert outcome.error is not None and "Retry-After 120 s" in outcome.error
    assert limited.call_count == 1
    with database.read() as s:
        due = s.get_one(IdpConnection, conn_id).next_run_at
    assert due is not None and due >= before + timedelta(seconds=119)
