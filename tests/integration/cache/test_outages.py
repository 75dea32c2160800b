"""Redis or PostgreSQL down (cut or stalled through a TCP proxy): a deactivation is refused
(503, nothing committed) rather than committed behind the cache; checks and admin reads
answer 503 in the /api/v1 error shape with Retry-After, never a 500 or a hang."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from idsync.app import create_app
from idsync.check_api import CHECK_REDIS_TIMEOUT_S
from models.cache.client import CheckClient
from models.cache.tracking import LEASE_S
from models.cache.writer import CacheWriter
from models.db.admin_keys import create_admin_key
from models.db.database import CommitRefused, CommittedChange, Database
from models.db.tables import Change, GroupMember, Organization, User
from models.db.tokens import create_scim_token
from models.settings import Settings
from tests.conftest import REDIS_TEST_URL
from tests.integration.cache.world import PATCH_SCHEMA, USER_SCHEMA, World
from tests.support.live_server import live_server
from tests.support.tcpproxy import TcpProxy
from worker.hooks import REVOCATION_TIMEOUT_S, install_change_hook
from worker.lanes import PRIORITY
from worker.pipeline import drain
from worker.reconcile import reconcile

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
SERVICE_TOKEN = "svc-t0k"
DEACTIVATE = {
    "schemas": [PATCH_SCHEMA],
    "Operations": [{"op": "replace", "path": "active", "value": False}],
}


StallableProxy = TcpProxy
"""Every TcpProxy can stall (``flowing``); the local-answers tests import this name."""


@dataclass
class Setup:
    world: World
    scim_token: str
    admin_key: str
    proxy: StallableProxy
    proxied_redis: str

    @property
    def alice(self) -> str:
        return self.world.users["alice"]

    def check_body(self) -> dict[str, Any]:
        return {
            "org": self.world.org_id,
            "user": self.alice,
            "workspace": "ws1",
            "grant": "create_sources",
        }

    def active_in_sql(self) -> bool:
        with self.world.db.read() as s:
            return bool(s.scalar(select(User.active).where(User.id == self.alice)))

    def changes(self) -> int:
        with self.world.db.read() as s:
            return int(
                s.scalar(select(func.count()).where(Change.org_id == self.world.org_id)) or 0
            )


@pytest.fixture
def setup(pg_database: Database) -> Iterator[Setup]:
    """alice (group eng, editor in ws1) with a built cache; Redis behind a proxy."""
    cache = redis.Redis.from_url(REDIS_TEST_URL)
    world = World.alice_edits(pg_database, cache)
    with pg_database.write() as s:
        org = s.get_one(Organization, world.org_id)
        token = create_scim_token(s, org, "test")
        key = create_admin_key(s, org)
    url = make_url(REDIS_TEST_URL)
    proxy = StallableProxy(url.host or "127.0.0.1", url.port or 6379)
    proxy.start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        yield Setup(world, token, key, proxy, proxied)
    finally:
        proxy.flowing.set()
        proxy.stop()
        cache.close()


def _app(setup: Setup, db: Database) -> Any:
    settings = Settings(
        CACHE_REDIS_URL=setup.proxied_redis,
        REDIS_URL=setup.proxied_redis,
        IDSYNC_CHECK_API_TOKEN=SERVICE_TOKEN,
    )
    return create_app(settings, db)


def _deactivate(client: TestClient | httpx.Client, setup: Setup, how: str) -> httpx.Response:
    headers = {
        "Authorization": f"Bearer {setup.scim_token}",
        "Content-Type": "application/scim+json",
    }
    path = f"/scim/v2/Users/{setup.alice}"
    if how == "patch":
        return client.patch(path, json=DEACTIVATE, headers=headers)
    if how == "put":
        body = {"schemas": [USER_SCHEMA], "userName": "alice", "active": False}
        replaced: httpx.Response = client.put(path, json=body, headers=headers)
        return replaced
    deleted: httpx.Response = client.delete(path, headers=headers)
    return deleted


def _assert_503_json(resp: httpx.Response, retry_after: str) -> dict[str, Any]:
    assert resp.status_code == 503, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.headers["retry-after"] == retry_after
    body: dict[str, Any] = resp.json()
    assert set(body) == {"detail", "field"} and body["field"] is None
    return body


@pytest.mark.parametrize("how", ["patch", "put", "delete"])
def test_deactivation_with_redis_down_is_503_and_commits_nothing_then_denies_at_once(
    setup: Setup, pg_database: Database, how: str
) -> None:
    client = TestClient(_app(setup, pg_database))
    auth = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
    allowed = client.post("/api/v1/check", json=setup.check_body(), headers=auth).json()
    assert allowed["status"] == "allow"
    changes = setup.changes()
    setup.proxy.stop()  # Redis unreachable

    started = time.monotonic()
    refused = _deactivate(client, setup, how)
    assert time.monotonic() - started < REVOCATION_TIMEOUT_S + 1
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == "5"
    body = refused.json()
    assert body["schemas"] == [ERROR_SCHEMA] and body["status"] == "503"
    assert refused.headers["content-type"].startswith("application/scim+json")
    assert setup.active_in_sql() and setup.changes() == changes  # nothing committed
    # the same guard stands in front of every write path (IdP pull, worker, scripts)
    with pytest.raises(CommitRefused):
        setup.world.set_active("alice", False)
    assert setup.active_in_sql() and setup.changes() == changes
    # checks meanwhile: 503 in the API's JSON error shape, not a 500
    down = client.post("/api/v1/check", json=setup.check_body(), headers=auth)
    _assert_503_json(down, "1")

    setup.proxy.restart()  # Redis is back; the IdP retries
    retried = _deactivate(client, setup, how)
    assert retried.status_code == (204 if how == "delete" else 200), retried.text
    denied = client.post("/api/v1/check", json=setup.check_body(), headers=auth).json()
    assert denied["status"] == "deny" and denied["reason"] == "user_inactive_or_deleted"
    assert not setup.active_in_sql()


def test_the_cache_denies_when_a_deactivation_becomes_visible(
    setup: Setup, pg_database: Database
) -> None:
    """Listeners run after COMMIT: one that checks first (registered before the app's
    hook) must already see the tombstone, i.e. it was written before the commit."""
    checks = CheckClient(redis.Redis.from_url(REDIS_TEST_URL), setup.world.org_id)
    seen: list[str] = []

    def at_commit(changes: list[CommittedChange]) -> None:
        if any(ch.kind == "user.deactivated" for ch in changes):
            seen.append(checks.check(setup.alice, "ws1", "create_sources").status)

    pg_database.add_listener(at_commit)
    client = TestClient(_app(setup, pg_database))
    assert _deactivate(client, setup, "patch").status_code == 200
    assert seen == ["deny"]


def test_stalled_redis_check_is_503_within_the_timeout_and_deactivation_is_refused(
    setup: Setup, pg_database: Database
) -> None:
    auth = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
    with (
        live_server(_app(setup, pg_database)) as base,
        httpx.Client(base_url=base, timeout=10) as client,
    ):
        ok = client.post("/api/v1/check", json=setup.check_body(), headers=auth)
        assert ok.json()["status"] == "allow"
        setup.proxy.flowing.clear()  # Redis stalls: connections open, nothing answers
        time.sleep(LEASE_S + 0.2)  # answers kept in memory are given up by then
        for _ in range(2):  # on the event loop, then (Redis suspect) in a thread
            started = time.monotonic()
            stalled = client.post("/api/v1/check", json=setup.check_body(), headers=auth)
            assert time.monotonic() - started < CHECK_REDIS_TIMEOUT_S + 1.5
            body = _assert_503_json(stalled, "1")
            assert "Redis" in body["detail"]
        started = time.monotonic()
        refused = _deactivate(client, setup, "patch")
        assert time.monotonic() - started < REVOCATION_TIMEOUT_S + 1.5
        assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
        assert setup.active_in_sql()
        setup.proxy.flowing.set()
        assert _deactivate(client, setup, "patch").status_code == 200
        after = client.post("/api/v1/check", json=setup.check_body(), headers=auth)
        assert after.json()["status"] == "deny"


def test_postgres_down_admin_reads_and_checks_are_503_json(
    setup: Setup, pg_database: Database, pg_url: str
) -> None:
    url = make_url(pg_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.start()
    api_db = Database(
        url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False),
        pool_size=2,
    )
    settings = Settings(CACHE_REDIS_URL=REDIS_TEST_URL, IDSYNC_CHECK_API_TOKEN=SERVICE_TOKEN)
    try:
        client = TestClient(create_app(settings, api_db))
        admin = {"Authorization": f"Bearer {setup.admin_key}"}
        service = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
        assert client.get("/api/v1/organization", headers=admin).status_code == 200
        proxy.stop()  # PostgreSQL unreachable for this app
        explain = {"user": setup.alice, "workspace": "ws1", "grant": "create_sources"}
        for resp in (
            client.get("/api/v1/organization", headers=admin),
            client.post("/api/v1/explain", json=explain, headers=admin),
            client.post("/api/v1/check", json=setup.check_body(), headers=admin),
            client.post("/api/v1/check/explain", json=setup.check_body(), headers=service),
        ):
            body = _assert_503_json(resp, "5")
            assert "database" in body["detail"]
        # the service token needs no database: its checks still come from the cache
        cached = client.post("/api/v1/check", json=setup.check_body(), headers=service)
        assert cached.json()["status"] == "allow"
    finally:
        proxy.stop()
        api_db.dispose()


def test_a_tombstone_whose_commit_fails_only_denies_until_reconcile_sees_sql_past_it(
    setup: Setup, pg_database: Database
) -> None:
    """PostgreSQL lost at COMMIT, after the tombstone was written: fail-safe (deny), and
    healed by the first reconcile once the organization's revision reaches the
    tombstone's (documented in docs/worker.md)."""
    cache = redis.Redis.from_url(REDIS_TEST_URL)
    install_change_hook(pg_database, Settings(CACHE_REDIS_URL=REDIS_TEST_URL))

    def commit_fails(changes: list[CommittedChange]) -> None:  # runs after the hook's guard
        if any(ch.kind == "user.deactivated" for ch in changes):
            raise RuntimeError("connection lost at COMMIT")

    pg_database.add_commit_guard(commit_fails)
    checks = CheckClient(cache, setup.world.org_id)
    writer = CacheWriter(cache, setup.world.org_id)
    with pytest.raises(RuntimeError):
        setup.world.set_active("alice", False)
    assert setup.active_in_sql()
    assert checks.check(setup.alice, "ws1", "create_sources").status == "deny"  # fail-safe
    reconcile(pg_database, writer, setup.world.org_id)
    # the tombstone is newer than SQL: reconcile leaves it (it might be in flight)
    assert checks.check(setup.alice, "ws1", "create_sources").status == "deny"
    setup.world.user("bob")  # any later write: the revision reaches the tombstone's
    report = reconcile(pg_database, writer, setup.world.org_id)
    assert report.users_wrong == 1
    assert checks.check(setup.alice, "ws1", "create_sources").status == "allow"


def _remove_alice(client: TestClient, setup: Setup, how: str) -> httpx.Response:
    headers = {
        "Authorization": f"Bearer {setup.scim_token}",
        "Content-Type": "application/scim+json",
    }
    path = f"/scim/v2/Groups/{setup.world.groups['eng']}"
    if how == "patch":
        op = {"op": "remove", "path": f'members[value eq "{setup.alice}"]'}
        patched: httpx.Response = client.patch(
            path, json={"schemas": [PATCH_SCHEMA], "Operations": [op]}, headers=headers
        )
        return patched
    if how == "put":
        body = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "eng",
            "members": [],
        }
        replaced: httpx.Response = client.put(path, json=body, headers=headers)
        return replaced
    deleted: httpx.Response = client.delete(path, headers=headers)
    return deleted


@pytest.mark.parametrize("how", ["patch", "put", "delete"])
def test_a_committed_group_removal_never_answers_the_old_allow(
    setup: Setup, pg_database: Database, how: str
) -> None:
    """No worker runs here, so nothing recomputes alice: the commit guard's pending entry
    alone must keep the check from answering the `allow` she had."""
    client = TestClient(_app(setup, pg_database))
    auth = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
    assert (
        client.post("/api/v1/check", json=setup.check_body(), headers=auth).json()["status"]
        == "allow"
    )
    removed = _remove_alice(client, setup, how)
    assert removed.status_code in (200, 204), removed.text
    answer = client.post("/api/v1/check", json=setup.check_body(), headers=auth).json()
    assert answer["status"] == "unknown" and answer["reason"] == "revocation_pending"
    # the worker's drain (run here in-process) recomputes alice: deny
    writer = CacheWriter(redis.Redis.from_url(REDIS_TEST_URL), setup.world.org_id)
    drain(pg_database, writer, setup.world.org_id, PRIORITY)
    answer = client.post("/api/v1/check", json=setup.check_body(), headers=auth).json()
    assert answer["status"] == "deny", answer


def test_a_group_removal_with_redis_down_is_503_and_commits_nothing(
    setup: Setup, pg_database: Database
) -> None:
    client = TestClient(_app(setup, pg_database))
    changes = setup.changes()
    setup.proxy.stop()
    refused = _remove_alice(client, setup, "patch")
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == "5"
    assert setup.changes() == changes
    assert _members(pg_database, setup) == {setup.alice}
    setup.proxy.restart()
    assert _remove_alice(client, setup, "patch").status_code in (200, 204)
    assert _members(pg_database, setup) == set()


def _members(db: Database, setup: Setup) -> set[str]:
    with db.read() as s:
        rows = s.scalars(
            select(GroupMember.user_id).where(GroupMember.group_id == setup.world.groups["eng"])
        )
        return set(rows)


def test_checks_waiting_on_a_stalled_redis_leave_healthz_and_scim_responsive(
    setup: Setup, pg_database: Database
) -> None:
    """Checks wait out their timeout on the event loop without blocking it: while four
    of them hang on a stalled Redis, /healthz and a SCIM GET answer at once."""
    import concurrent.futures

    auth = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
    scim = {"Authorization": f"Bearer {setup.scim_token}"}
    with (
        live_server(_app(setup, pg_database)) as base,
        httpx.Client(base_url=base, timeout=10) as client,
    ):
        assert client.post("/api/v1/check", json=setup.check_body(), headers=auth).json()["allowed"]
        setup.proxy.flowing.clear()
        time.sleep(LEASE_S + 0.2)  # answers kept in memory are given up by then

        def check() -> tuple[float, httpx.Response]:
            started = time.monotonic()
            with httpx.Client(base_url=base, timeout=10) as own:
                resp = own.post("/api/v1/check", json=setup.check_body(), headers=auth)
            return time.monotonic() - started, resp

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            waiting = [pool.submit(check) for _ in range(4)]
            time.sleep(0.2)  # the checks are in flight, waiting on Redis
            for _ in range(5):
                started = time.monotonic()
                assert client.get("/healthz").status_code == 200
                user = client.get(f"/scim/v2/Users/{setup.alice}", headers=scim)
                assert user.status_code == 200, user.text
                assert time.monotonic() - started < 0.5
            assert not any(f.done() for f in waiting)  # still waiting meanwhile
            for f in waiting:
                took, resp = f.result()
                _assert_503_json(resp, "1")
                assert CHECK_REDIS_TIMEOUT_S - 0.3 < took < CHECK_REDIS_TIMEOUT_S + 1.0
        setup.proxy.flowing.set()
        after = client.post("/api/v1/check", json=setup.check_body(), headers=auth)
        assert after.json()["status"] == "allow"


def test_a_check_kept_in_memory_is_refused_as_soon_as_a_deactivation_returns(
    setup: Setup, pg_database: Database
) -> None:
    """A repeated check is answered from process memory (it answers while Redis is
    stalled, within the lease); the deactivation's tombstone, written before its COMMIT,
    reaches the process before the PATCH returns: the next check is a deny."""
    auth = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
    with (
        live_server(_app(setup, pg_database)) as base,
        httpx.Client(base_url=base, timeout=10) as client,
    ):

        def check() -> tuple[float, str]:
            started = time.monotonic()
            resp = client.post("/api/v1/check", json=setup.check_body(), headers=auth)
            return time.monotonic() - started, resp.json()["status"]

        def from_memory() -> bool:
            check()
            time.sleep(0.2)  # the invalidation connection is up; this answer is kept
            check()
            setup.proxy.flowing.clear()
            try:
                took, status = check()
            finally:
                setup.proxy.flowing.set()
            return status == "allow" and took < 0.2  # Redis could not have answered it

        assert from_memory()
        time.sleep(LEASE_S + 0.2)  # the stall dropped it; the connection comes back
        deadline = time.monotonic() + 10
        while check()[1] != "allow" or not from_memory():
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert _deactivate(client, setup, "patch").status_code == 200
        assert check()[1] == "deny"
