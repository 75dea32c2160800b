"""Fault tests with a real worker: SIGKILL mid-recompute, Redis flushed, PostgreSQL down."""

from __future__ import annotations

import re

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from idsync.app import create_app
from models.cache.client import CheckClient
from models.cache.writer import CacheWriter
from models.db.database import Database
from models.db.tables import Organization
from models.db.tokens import create_scim_token
from models.settings import Settings
from tests.integration.cache.world import World
from tests.integration.worker.conftest import BROKER_URL, CACHE_URL, WorkerProcess, wait_until
from tests.support.scim_client import user_body
from tests.support.tcpproxy import TcpProxy
from worker.broker import TASK_RECONCILE, sender_app
from worker.hooks import install_change_hook
from worker.lanes import ALL_LANES, PRIORITY

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.worker]


def _world(db: Database, cache: redis.Redis) -> World:
    world = World.create(db)
    world.workspace("ws1")
    world.team("eng", ["alice", "bob"], "ws1", "editor")
    world.cached(cache)
    return world


def test_sigkilled_worker_task_runs_again_and_cache_converges(
    pg_database: Database, cache: redis.Redis, settings: Settings, workers: WorkerProcess
) -> None:
    world = _world(pg_database, cache)
    install_change_hook(pg_database, settings)
    writer = CacheWriter(cache, world.org_id)
    checks = CheckClient(cache, world.org_id)
    bob = world.users["bob"]
    # this worker pauses between computing and writing, so the kill lands mid-recompute
    first = workers.start(IDSYNC_FAULT_DRAIN_PAUSE_S="60")
    world.remove_member("eng", "bob")
    wait_until(lambda: cache.exists(writer.keys.lease(PRIORITY)))
    wait_until(lambda: "drain.priority" in workers.logs())
    task_id = re.search(r"idsync\.drain\.priority\[([0-9a-f-]+)\] received", workers.logs())
    assert task_id is not None
    workers.kill(first)
    # the recompute's write never happened; the removal's pending entry answers meanwhile
    pending = checks.check(bob, "ws1", "create_sources")
    assert (pending.status, pending.reason) == ("unknown", "revocation_pending")
    assert writer.backlog(ALL_LANES) == 1  # the dirty mark survived the crash
    workers.start()  # a fresh worker: the unacked task is redelivered to it
    answer = wait_until(
        lambda: (a := checks.check(bob, "ws1", "create_sources")).status == "deny" and a, 120
    )
    assert answer.revision >= world.revision()
    assert workers.logs().count(f"[{task_id.group(1)}] received") >= 2  # it ran again
    wait_until(lambda: writer.backlog(ALL_LANES) == 0)


def test_flushed_redis_answers_unknown_until_reconcile_rebuilds(
    pg_database: Database, cache: redis.Redis, workers: WorkerProcess, settings: Settings
) -> None:
    world = _world(pg_database, cache)
    checks = CheckClient(cache, world.org_id)
    alice = world.users["alice"]
    assert checks.check(alice, "ws1", "create_sources").allowed
    workers.start()
    cache.flushdb()
    lost = checks.check(alice, "ws1", "create_sources")
    assert lost.status == "unknown" and lost.reason == "cache_not_built"
    app = sender_app(settings)
    app.send_task(TASK_RECONCILE, args=[world.org_id], queue="idsync.reconcile")
    back = wait_until(lambda: (a := checks.check(alice, "ws1", "create_sources")).known and a)
    assert back.status == "allow"
    assert checks.check(world.users["bob"], "ws1", "manage_workspace").status == "deny"
    report = cache.hget(CacheWriter(cache, world.org_id).keys.reconcile, "report")
    assert report is not None and b'"cache_missing": true' in report


def test_postgres_down_scim_503_then_worker_catches_up(
    pg_database: Database, pg_url: str, cache: redis.Redis, workers: WorkerProcess
) -> None:
    world = _world(pg_database, cache)
    with pg_database.write() as s:
        org = s.get(Organization, world.org_id)
        assert org is not None
        token = create_scim_token(s, org, "test")
    url = make_url(pg_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    settings = Settings(DATABASE_URL=proxied, REDIS_URL=BROKER_URL, CACHE_REDIS_URL=CACHE_URL)
    api_db = Database(proxied, pool_size=2)
    client = TestClient(create_app(settings, api_db))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    bob = world.users["bob"]
    removal = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "remove", "path": f'members[value eq "{bob}"]'}],
    }
    ok = client.patch(f"/scim/v2/Groups/{world.groups['eng']}", json=removal, headers=headers)
    assert ok.status_code in (200, 204)
    proxy.stop()  # PostgreSQL is now unreachable for the API and the worker
    down = client.post("/scim/v2/Users", json=user_body("dora@example.com"), headers=headers)
    assert down.status_code == 503
    body = down.json()
    assert "urn:ietf:params:scim:api:messages:2.0:Error" in body["schemas"]
    assert body["status"] == "503"
    workers.start(DATABASE_URL=proxied)  # its drain fails on the database and retries
    wait_until(lambda: "Retry in" in workers.logs(), 60)
    checks = CheckClient(cache, world.org_id)
    pending = checks.check(bob, "ws1", "create_sources")  # not recomputed yet: not allow
    assert (pending.status, pending.reason) == ("unknown", "revocation_pending")
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.port = make_url(proxied).port or 0
    proxy.start()  # PostgreSQL is back
    answer = wait_until(
        lambda: (a := checks.check(bob, "ws1", "create_sources")).status == "deny" and a, 60
    )
    assert answer.revision >= world.revision()
    proxy.stop()
    api_db.dispose()
