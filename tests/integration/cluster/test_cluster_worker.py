"""A real Celery worker with the permission cache on a Redis Cluster and the broker on
the single test Redis (issue 11): rebuild as worker tasks (chunks, flip), SCIM writes
through the hook, drains, and the check client's answers on the cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from models.cache.client import Answer, CheckClient
from models.cache.writer import CacheWriter
from models.db.database import Database
from models.settings import Settings
from tests.conftest import REDIS_TEST_URL
from tests.integration.cluster.spread import (
    assert_keys_in_their_org_slot,
    orgs_on_every_master,
)
from tests.integration.worker.conftest import WorkerProcess, wait_until
from tests.support.redis_cluster import LocalCluster
from tests.support.throwaway import flushed_redis
from worker.broker import ROUTES, TASK_REBUILD, sender_app
from worker.hooks import install_change_hook
from worker.lanes import ALL_LANES

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.worker]


def creates(checks: CheckClient, user: str) -> Answer:
    return checks.check(user, "ws1", "create_sources")


def caught_up(writer: CacheWriter, revision: int) -> bool:
    return writer.backlog(ALL_LANES) == 0 and writer.meta().wm >= revision


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    with flushed_redis(REDIS_TEST_URL) as client:
        yield client


def test_a_real_worker_keeps_the_cache_on_a_cluster(
    pg_database: Database,
    pg_url: str,
    redis_cluster: LocalCluster,
    cluster_cache: RedisCluster,
    broker: redis.Redis,
    tmp_path: Path,
) -> None:
    worlds = orgs_on_every_master(pg_database, cluster_cache)
    settings = Settings(REDIS_URL=REDIS_TEST_URL, CACHE_REDIS_URL=redis_cluster.url)
    install_change_hook(pg_database, settings)  # the API process's hook, on the cluster
    workers = WorkerProcess(pg_url, tmp_path)
    try:
        workers.start(REDIS_URL=REDIS_TEST_URL, CACHE_REDIS_URL=redis_cluster.url)
        app = sender_app(settings, REDIS_TEST_URL)
        for w in worlds:
            app.send_task(TASK_REBUILD, args=[w.org_id], queue=ROUTES[TASK_REBUILD]["queue"])
        clients = {w.org_id: CheckClient(cluster_cache, w.org_id) for w in worlds}
        for w in worlds:
            wait_until(lambda: creates(clients[w.org_id], w.users["alice"]).allowed)  # noqa: B023

        for w in worlds:
            w.remove_member("eng", "bob")  # SCIM write -> hook -> drain task on the worker
            w.add_member("eng", "carol")
        for w in worlds:
            checks, bob, carol = clients[w.org_id], w.users["bob"], w.users["carol"]
            rev = w.revision()
            wait_until(lambda: creates(checks, bob).revision >= rev)  # noqa: B023
            assert creates(checks, bob).status == "deny"
            assert creates(checks, carol).allowed

            w.set_active("alice", False)  # tombstone on the cluster before the write returns
            gone = creates(checks, w.users["alice"])
            assert gone.status == "deny" and gone.reason == "user_inactive_or_deleted"

        for w in worlds:
            writer = CacheWriter(cluster_cache, w.org_id)
            wait_until(lambda: caught_up(writer, w.revision()))  # noqa: B023
    finally:
        workers.stop_all()
    assert "Traceback" not in workers.logs(), workers.logs()
    assert_keys_in_their_org_slot(redis_cluster, worlds)
