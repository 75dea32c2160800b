"""The synchronous check client with answers kept in memory (``CheckClient(local=
LocalAnswers.watching(url))``): a repeated check costs no round trip, a write to the
organization's cache (a revocation) is refused within milliseconds, a stalled
invalidation connection stops the keeping within its lease, and a Cluster is refused."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import redis
from redis.cluster import RedisCluster

from models.cache.client import Check, CheckClient
from models.cache.layout import NO_ACCESS
from models.cache.local_answers import LocalAnswers
from models.cache.writer import CacheWriter
from models.db.database import Database
from tests.conftest import REDIS_TEST_URL
from tests.integration.cache.test_outages import StallableProxy
from tests.integration.cache.world import World
from worker import rebuild as rb

pytestmark = [pytest.mark.redis]


@pytest.fixture
def world(database: Database, cache: redis.Redis) -> Iterator[World]:
    w = World.create(database)
    w.workspace("ws1")
    for n in ("alice", "bob"):
        w.user(n)
    w.group("eng", ["alice", "bob"])
    w.bind("eng", "ws1", "editor")
    rb.rebuild(database, CacheWriter(cache, w.org_id), w.org_id)
    yield w
    keys = list(cache.scan_iter(match=f"idsync:{{{w.org_id}}}:*", count=1000))
    if keys:
        cache.delete(*keys)


def _until(cond: Callable[[], bool], timeout: float = 5.0) -> float:
    started = time.perf_counter()
    while not cond():
        if time.perf_counter() - started > timeout:
            raise AssertionError("condition not reached")
        time.sleep(0.0005)
    return time.perf_counter() - started


def _watching(url: str) -> LocalAnswers:
    local = LocalAnswers.watching(url)
    assert local.tracking is not None
    _until(local.tracking.usable)
    return local


def test_a_repeated_check_costs_no_round_trip_and_a_revocation_is_refused_at_once(
    cache: redis.Redis, world: World
) -> None:
    local = _watching(REDIS_TEST_URL)
    try:
        client = CheckClient(cache, world.org_id, local=local)
        alice = world.users["alice"]
        assert client.check(alice, "ws1", "create_sources").allowed
        trips = client.round_trips
        for _ in range(100):
            assert client.check(alice, "ws1", "create_sources").allowed
        assert client.round_trips == trips  # answered from memory
        assert local.hits == 100
        kept = client.check(alice, "ws1", "create_sources")
        # The tombstone a deactivation writes before its COMMIT: refused within ms.
        CacheWriter(cache, world.org_id).put(kept.revision + 1, {alice: NO_ACCESS})
        took = _until(
            lambda: (
                client.check(alice, "ws1", "create_sources").reason == "user_inactive_or_deleted"
            )
        )
        assert took < 0.5
        assert client.round_trips > trips
        # min_revision above what is kept asks Redis again.
        trips = client.round_trips
        bob = world.users["bob"]
        answer = client.check(bob, "ws1", "create_sources")
        client.check(bob, "ws1", "create_sources", min_revision=answer.revision)
        assert client.round_trips == trips + 1
    finally:
        local.close()


def test_a_stalled_invalidation_connection_stops_answers_from_memory_within_its_lease(
    cache: redis.Redis, world: World
) -> None:
    kwargs = redis.Redis.from_url(REDIS_TEST_URL).connection_pool.connection_kwargs
    proxy = StallableProxy(str(kwargs.get("host", "127.0.0.1")), int(kwargs.get("port", 6379)))
    proxy.start()
    db = int(kwargs.get("db", 0))
    local = _watching(f"redis://127.0.0.1:{proxy.port}/{db}")
    try:
        client = CheckClient(cache, world.org_id, local=local)
        alice = world.users["alice"]
        client.check(alice, "ws1", "create_sources")
        trips = client.round_trips
        client.check(alice, "ws1", "create_sources")
        assert client.round_trips == trips
        proxy.flowing.clear()  # connection open, nothing moves: no TCP error at all
        tracking = local.tracking
        assert tracking is not None
        assert _until(lambda: not tracking.usable()) <= 0.5 + 0.2  # lease + a ping
        client.check(alice, "ws1", "create_sources")
        assert client.round_trips == trips + 1  # asked Redis: nothing kept is used
        client.check(alice, "ws1", "create_sources")
        assert client.round_trips == trips + 2  # and nothing new is kept
    finally:
        proxy.flowing.set()
        local.close()
        proxy.stop()


def test_close_stops_the_watching_thread_and_the_keeping(cache: redis.Redis, world: World) -> None:
    local = _watching(REDIS_TEST_URL)
    thread = local._thread
    assert thread is not None and thread.is_alive()
    local.close()
    assert not thread.is_alive()
    client = CheckClient(cache, world.org_id, local=local)
    alice = world.users["alice"]
    client.check(alice, "ws1", "create_sources")
    trips = client.round_trips
    client.check(alice, "ws1", "create_sources")
    assert client.round_trips == trips + 1


def test_answers_kept_in_memory_are_refused_on_a_cluster_client() -> None:
    cluster = RedisCluster.__new__(RedisCluster)  # never connects: the type is what counts
    with pytest.raises(ValueError, match="single Redis"):
        CheckClient(cluster, "org", local=LocalAnswers())


def test_a_check_batch_is_kept_and_given_whole(cache: redis.Redis, world: World) -> None:
    local = _watching(REDIS_TEST_URL)
    try:
        client = CheckClient(cache, world.org_id, local=local)
        queries = [Check(world.users[n], "ws1", "create_sources") for n in ("alice", "bob")]
        first = client.batch(queries)
        trips = client.round_trips
        assert client.batch(queries) == first
        assert client.round_trips == trips
    finally:
        local.close()
