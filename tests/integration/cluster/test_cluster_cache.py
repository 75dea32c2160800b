"""The permission cache on a real 3-master Redis Cluster (issue 11).

Several organizations whose keys land on different masters; each test drives the public
paths (writer writes, client answers) and ends by checking that every key the cache made
lives in its organization's slot: the hash tag ``{org}`` holds for every key, script and
transaction the writer, the check client, the rebuild, reconcile and the hook use.
"""

from __future__ import annotations

from collections import deque

import pytest
import redis
from fastapi.testclient import TestClient
from redis.cluster import RedisCluster

from idsync.app import create_app
from idsync.freshness import StateCollector
from idsync.sync_status import sync_status
from models.cache.client import CheckClient
from models.cache.connection import cache_redis
from models.cache.fallback import answer_from_sql
from models.cache.layout import OrgKeys
from models.cache.writer import CacheWriter
from models.db.database import Database
from models.settings import Settings
from tests.conftest import REDIS_TEST_URL
from tests.integration.cluster.spread import (
    assert_keys_in_their_org_slot,
    decisions,
    orgs_on_every_master,
    questions,
)
from tests.support.redis_cluster import LocalCluster
from worker import rebuild as rb
from worker.broker import TASK_IDP_PULL
from worker.factory import create_celery
from worker.hooks import ChangeHook
from worker.lanes import ALL_LANES, PRIORITY
from worker.pipeline import drain, ingest_outbox
from worker.reconcile import reconcile

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


class Queue:
    """The broker as the hook sees it; ``run`` drains what was enqueued, as a worker."""

    def __init__(self, db: Database, cluster: RedisCluster) -> None:
        self.db = db
        self.cluster = cluster
        self.tasks: deque[tuple[str, str]] = deque()

    def enqueue(self, org_id: str, wake: str) -> None:
        self.tasks.append((org_id, wake))

    def run(self) -> None:
        while self.tasks:
            org_id, wake = self.tasks.popleft()
            drain(self.db, CacheWriter(self.cluster, org_id), org_id, wake, enqueue=self.enqueue)


def stream_users(cluster: RedisCluster, org_id: str) -> list[bytes]:
    entries: list[tuple[bytes, dict[bytes, bytes]]] = cluster.xrange(OrgKeys.of(org_id).stream)  # type: ignore[assignment]
    return [fields[b"u"] for _id, fields in entries]


def test_build_check_and_hook_driven_changes_on_a_cluster(
    pg_database: Database, redis_cluster: LocalCluster, cluster_cache: RedisCluster
) -> None:
    worlds = orgs_on_every_master(pg_database, cluster_cache)
    for w in worlds:
        checks = CheckClient(cluster_cache, w.org_id)
        assert checks.check(w.users["alice"], "ws1", "create_sources").reason == "cache_not_built"
        rb.rebuild(pg_database, CacheWriter(cluster_cache, w.org_id), w.org_id)
        qs = questions(w)
        batch = checks.batch(qs)
        assert decisions(list(batch)) == decisions(list(answer_from_sql(pg_database, w.org_id, qs)))
        assert [checks.batch([q])[0] for q in qs] == batch
        assert checks.check(w.users["alice"], "ws1", "create_sources").allowed
        assert checks.check(w.users["carol"], "ws2", "manage_workspace").allowed

    queue = Queue(pg_database, cluster_cache)
    hook = ChangeHook(cluster_cache, queue.enqueue)
    pg_database.add_commit_guard(hook.before_commit)
    pg_database.add_listener(hook)
    for w in worlds:
        checks = CheckClient(cluster_cache, w.org_id)
        bob, carol = w.users["bob"], w.users["carol"]
        w.remove_member("eng", "bob")  # marks (script calls) of the after-commit hook
        assert (w.org_id, PRIORITY) in queue.tasks
        assert checks.check(bob, "ws1", "create_sources").status != "allow"  # pending
        queue.run()
        answer = checks.check(bob, "ws1", "create_sources")
        assert answer.status == "deny" and answer.revision >= w.revision()
        assert bob.encode() in stream_users(cluster_cache, w.org_id)

        w.set_active("carol", False)  # tombstone written by the commit guard, no drain
        gone = checks.check(carol, "ws2", "manage_workspace")
        assert gone.status == "deny" and gone.reason == "user_inactive_or_deleted"
        w.set_active("carol", True)
        queue.run()
        assert checks.check(carol, "ws2", "manage_workspace").allowed
        writer = CacheWriter(cluster_cache, w.org_id)
        assert writer.backlog(ALL_LANES) == 0
        assert writer.watermark(ALL_LANES) == w.revision()
        qs = questions(w)
        assert decisions(list(checks.batch(qs))) == decisions(
            list(answer_from_sql(pg_database, w.org_id, qs))
        )
    assert_keys_in_their_org_slot(redis_cluster, worlds)


def test_outbox_catch_up_marks_and_moves_the_cursor_on_a_cluster(
    pg_database: Database, redis_cluster: LocalCluster, cluster_cache: RedisCluster
) -> None:
    """No hook: the catch-up reads the change log, marks dirty and raises the cursor
    (script calls that a single Redis pipelines in one MULTI/EXEC)."""
    worlds = orgs_on_every_master(pg_database, cluster_cache)
    for w in worlds:
        writer = CacheWriter(cluster_cache, w.org_id)
        rb.rebuild(pg_database, writer, w.org_id)
        w.remove_member("eng", "bob")
        w.add_member("ops", "alice")
        report = ingest_outbox(pg_database, writer, w.org_id)
        assert report.rows == 2 and writer.meta().cursor == w.revision()
        assert writer.backlog(ALL_LANES) > 0
        for wake in sorted(report.wakes):
            drain(pg_database, writer, w.org_id, wake)
        checks = CheckClient(cluster_cache, w.org_id)
        assert checks.check(w.users["bob"], "ws1", "create_sources").status == "deny"
        assert checks.check(w.users["alice"], "ws2", "manage_workspace").allowed
        assert writer.backlog(ALL_LANES) == 0
    assert_keys_in_their_org_slot(redis_cluster, worlds)


def test_rebuilds_flip_generations_on_a_cluster(
    pg_database: Database, redis_cluster: LocalCluster, cluster_cache: RedisCluster
) -> None:
    """In-process rebuild with a change arriving mid-build, then a rebuild chunk by
    chunk as the worker runs it (finish_chunk's transaction, then the flip)."""
    worlds = orgs_on_every_master(pg_database, cluster_cache)
    for w in worlds:
        writer = CacheWriter(cluster_cache, w.org_id)
        checks = CheckClient(cluster_cache, w.org_id)
        rb.rebuild(pg_database, writer, w.org_id)
        first = writer.meta().gen
        assert first is not None
        build = rb.start(writer)
        rev, _total, ranges = rb.plan(pg_database, w.org_id, chunk=2)
        assert len(ranges) >= 2
        rb.write_labels(pg_database, writer, w.org_id, build.gen)
        for lo, hi in ranges:
            rb.build_chunk(pg_database, writer, w.org_id, lo, hi, build.gen)
        w.remove_member("eng", "bob")  # arrives while the new generation is built
        drain(pg_database, writer, w.org_id, PRIORITY)
        assert writer.flip(build.gen, rev)
        rb.release(writer, build)
        assert checks.check(w.users["bob"], "ws1", "create_sources").status == "deny"
        assert not cluster_cache.exists(*writer.keys.generation_keys(first))
        assert b"*" in stream_users(cluster_cache, w.org_id)  # the flip's event

        # the worker's way: chunks, each finished in one transaction; the last flips
        build = rb.start(writer)
        rev, _total, ranges = rb.plan(pg_database, w.org_id, chunk=2)
        rb.write_labels(pg_database, writer, w.org_id, build.gen)
        rb.set_progress(writer, state="running", gen=build.gen, revision=rev, total=3)
        rb.set_progress(writer, done=0, chunks=len(ranges))
        flips = []
        for i, (lo, hi) in enumerate(ranges):
            users, _sets = rb.build_chunk(pg_database, writer, w.org_id, lo, hi, build.gen)
            flips.append(rb.finish_chunk(writer, build, i, users))
        assert flips == [False] * (len(ranges) - 1) + [True]
        assert writer.meta().gen == build.gen
        assert checks.check(w.users["alice"], "ws1", "create_sources").allowed
        assert checks.check(w.users["bob"], "ws1", "create_sources").status == "deny"
    assert_keys_in_their_org_slot(redis_cluster, worlds)


def test_reconcile_repairs_drift_on_a_cluster(
    pg_database: Database, redis_cluster: LocalCluster, cluster_cache: RedisCluster
) -> None:
    worlds = orgs_on_every_master(pg_database, cluster_cache)
    for w in worlds:
        writer = CacheWriter(cluster_cache, w.org_id)
        assert reconcile(pg_database, writer, w.org_id).cache_missing
        rb.rebuild(pg_database, writer, w.org_id)
        assert reconcile(pg_database, writer, w.org_id).drift == 0
        gen = writer.meta().gen
        assert gen is not None
        cluster_cache.hdel(writer.keys.users(gen), w.users["alice"])
        cluster_cache.hset(writer.keys.users(gen), w.users["carol"], "-|0")
        report = reconcile(pg_database, writer, w.org_id)
        assert (report.users_missing, report.users_wrong) == (1, 1) and report.repaired >= 2
        assert reconcile(pg_database, writer, w.org_id).drift == 0
        checks = CheckClient(cluster_cache, w.org_id)
        assert checks.check(w.users["alice"], "ws1", "create_sources").allowed
        assert checks.check(w.users["carol"], "ws2", "manage_workspace").allowed
    assert_keys_in_their_org_slot(redis_cluster, worlds)


def test_check_api_and_readiness_with_the_cache_on_a_cluster(
    pg_database: Database, redis_cluster: LocalCluster, cluster_cache: RedisCluster
) -> None:
    """The API made from settings: CACHE_REDIS_URL at one node with ?cluster=true, the
    broker (REDIS_URL) on the single test Redis."""
    worlds = orgs_on_every_master(pg_database, cluster_cache)
    settings = Settings(
        REDIS_URL=REDIS_TEST_URL,
        CACHE_REDIS_URL=redis_cluster.url,
        IDSYNC_CHECK_API_TOKEN="t0k",
    )
    client = TestClient(create_app(settings, pg_database))
    auth = {"Authorization": "Bearer t0k"}
    for w in worlds:
        rb.rebuild(pg_database, CacheWriter(cluster_cache, w.org_id), w.org_id)
    for w in worlds:
        alice, carol = w.users["alice"], w.users["carol"]
        body = {"org": w.org_id, "user": alice, "workspace": "ws1", "grant": "create_sources"}
        one = client.post("/api/v1/check", json=body, headers=auth).json()
        assert one["status"] == "allow" and one["revision"] == w.revision()
        batch = client.post(
            "/api/v1/check/batch",
            headers=auth,
            json={
                "org": w.org_id,
                "checks": [
                    {"type": "check", "user": alice, "workspace": "ws1", "grant": "create_sources"},
                    {"type": "check", "user": carol, "workspace": "ws1", "grant": "create_sources"},
                    {
                        "type": "check",
                        "user": carol,
                        "workspace": "ws2",
                        "grant": "manage_workspace",
                    },
                ],
            },
        ).json()["results"]
        assert [r["status"] for r in batch] == ["allow", "deny", "allow"]
    ready = client.get("/readyz").json()["parts"]
    assert ready["cache"]["status"] == "ok", ready
    assert ready["cache_built"]["status"] == "ok", ready
    assert_keys_in_their_org_slot(redis_cluster, worlds)


def test_the_idp_pull_lock_is_on_the_broker_and_the_cluster_holds_org_keys_only(
    monkeypatch: pytest.MonkeyPatch, redis_cluster: LocalCluster, cluster_cache: RedisCluster
) -> None:
    """The one lock that is no organization's lives on the broker (single Redis), like the
    beat lock and the worker heartbeats: a pull holding it there keeps a second one out,
    and the pull leaves nothing outside an organization's slot on the cluster."""
    import worker.runtime

    monkeypatch.setattr(worker.runtime, "_RUNTIME", None)  # restored after the test
    settings = Settings(
        REDIS_URL=REDIS_TEST_URL, CACHE_REDIS_URL=redis_cluster.url, DATABASE_URL="sqlite://"
    )
    task = create_celery(settings, REDIS_TEST_URL).tasks[TASK_IDP_PULL]
    held = redis.Redis.from_url(REDIS_TEST_URL).lock("idsync:idp-pull:lock", timeout=30)
    assert held.acquire(blocking=False)
    try:
        assert task.apply().get() == {"skipped": "another IdP pull is still running"}
    finally:
        held.release()
    try:
        assert "no IdP pull configured" in task.apply().get()["skipped"]  # lock free: it runs
    finally:
        if worker.runtime._RUNTIME is not None:
            worker.runtime._RUNTIME.database.dispose()
    assert sum(n.client().dbsize() for n in redis_cluster.nodes) == 0


def test_metrics_and_sync_status_read_the_cache_on_a_cluster(
    pg_database: Database, redis_cluster: LocalCluster, cluster_cache: RedisCluster
) -> None:
    """The /metrics state gauges and the sync status, made from CACHE_REDIS_URL."""
    worlds = orgs_on_every_master(pg_database, cluster_cache)
    for w in worlds[:2]:
        rb.rebuild(pg_database, CacheWriter(cluster_cache, w.org_id), w.org_id)
    state = StateCollector(pg_database, redis_cluster.url, REDIS_TEST_URL, max_orgs=10)
    gauges = {m.name: m for m in state.collect()}
    assert gauges["idsync_state_up"].samples[0].value == 1.0
    # only organizations behind SQL are listed: the unbuilt one, its whole revision behind
    assert [s.value for s in gauges["idsync_org_cache_built"].samples] == [0.0]
    lags = [s.value for s in gauges["idsync_org_revision_lag"].samples]
    assert lags == [float(worlds[2].revision())]
    client = cache_redis(redis_cluster.url)
    try:
        status = sync_status(pg_database, worlds[0].org_id, client)
        assert status["cache"]["revision_lag"] == 0, status["cache"]
        unbuilt = sync_status(pg_database, worlds[2].org_id, client)["cache"]
        assert unbuilt["revision_lag"] == worlds[2].revision(), unbuilt
    finally:
        client.close()
