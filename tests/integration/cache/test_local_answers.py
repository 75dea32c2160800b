"""Answers kept in process memory under Redis's invalidation reports (CLIENT TRACKING):
dropped within milliseconds of a write to their organization's keys, never kept across
a change that raced their read, and all dropped when the invalidation connection is
lost or stalls (ping with a lease)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from models.cache.layout import OrgKeys
from models.cache.local_answers import LocalAnswers
from models.cache.results import Answer, Check
from models.cache.tracking import Invalidations, org_of
from tests.conftest import REDIS_TEST_URL
from tests.integration.cache.test_outages import StallableProxy

pytestmark = [pytest.mark.redis]

ORG = "trk-o1"
OTHER = "trk-o2"
Q = Check("u1", "ws1", "create_sources")
ALLOW = Answer("allow", 5, "granted")


@pytest.fixture
def cache() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_TEST_URL)
    yield client
    for org in (ORG, OTHER):
        keys = OrgKeys.of(org)
        client.delete(keys.meta, keys.users(1), keys.dirty("r"))
    client.close()


async def _until(cond: Callable[[], bool], timeout: float = 5.0) -> float:
    """Seconds until ``cond()`` held (fails the test after ``timeout``)."""
    started = time.perf_counter()
    while not cond():
        if time.perf_counter() - started > timeout:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.001)
    return time.perf_counter() - started


def _watched(url: str, *, lease_s: float = 0.3) -> tuple[LocalAnswers, Invalidations]:
    local = LocalAnswers()
    local.tracking = Invalidations(url, local.changed, ping_every_s=0.05, lease_s=lease_s)
    return local, local.tracking


def _kept(local: LocalAnswers) -> bool:
    return local.answers(ORG, [Q], None) is not None


def test_org_of_names_the_organization_of_answer_keys_only() -> None:
    keys = OrgKeys.of(ORG)
    assert org_of(keys.meta.encode()) == ORG
    assert org_of(keys.users(3).encode()) == ORG
    assert org_of(keys.labels(3).encode()) == ORG
    assert org_of(keys.dirty("r").encode()) is None
    assert org_of(keys.stream.encode()) is None
    assert org_of(b"other:key") is None


def test_kept_answers_drop_within_milliseconds_of_a_write_to_their_org(
    cache: redis.Redis,
) -> None:
    async def scenario() -> None:
        local, tracking = _watched(REDIS_TEST_URL)
        task = asyncio.create_task(tracking.run())
        try:
            await _until(tracking.usable)
            local.keep(ORG, local.epoch(ORG), [Q], [ALLOW])
            assert local.answers(ORG, [Q], None) == [ALLOW]
            assert local.answers(ORG, [Q], min_revision=6) is None  # asks Redis
            assert local.answers(ORG, [Q], min_revision=5) == [ALLOW]
            keys = OrgKeys.of(ORG)
            cache.zadd(keys.dirty("r"), {"u1": 6})  # a lane: answers do not read it
            cache.hset(OrgKeys.of(OTHER).meta, "wm", 9)  # another organization
            await asyncio.sleep(0.05)
            assert _kept(local)
            started = time.perf_counter()
            cache.hset(keys.users(1), "u1", "-|6")  # the tombstone a deactivation writes
            returned = time.perf_counter() - started
            dropped = returned + await _until(lambda: not _kept(local), timeout=0.5)
            assert dropped < 0.1, dropped
            # a read that raced a change is not kept
            epoch = local.epoch(ORG)
            cache.hset(keys.meta, "wm", 7)
            await _until(lambda: local.epoch(ORG) != epoch)
            local.keep(ORG, epoch, [Q], [ALLOW])
            assert not _kept(local)
            # an unknown or an SQL answer is never kept
            local.keep(ORG, local.epoch(ORG), [Q], [Answer("unknown", 5, "cache_not_built")])
            local.keep(ORG, local.epoch(ORG), [Q], [Answer("allow", 5, "granted", "sql")])
            assert not _kept(local)
        finally:
            task.cancel()

    asyncio.run(scenario())


def test_a_stalled_or_lost_invalidation_connection_drops_every_answer() -> None:
    proxy = StallableProxy(
        "127.0.0.1",
        redis.Redis.from_url(REDIS_TEST_URL).connection_pool.connection_kwargs.get("port", 6379),
    )
    proxy.start()

    async def scenario() -> None:
        local, tracking = _watched(f"redis://127.0.0.1:{proxy.port}/0", lease_s=0.3)
        task = asyncio.create_task(tracking.run())
        try:
            await _until(tracking.usable)
            local.keep(ORG, local.epoch(ORG), [Q], [ALLOW])
            assert _kept(local)
            proxy.flowing.clear()  # connection open, nothing moves: no TCP error at all
            stalled = await _until(lambda: not _kept(local), timeout=2)
            assert stalled <= 0.3 + 0.1, stalled  # the lease, plus one ping interval
            local.keep(ORG, local.epoch(ORG), [Q], [ALLOW])
            assert not _kept(local)  # nothing is kept while the connection is not usable
            proxy.flowing.set()
            await _until(tracking.usable, timeout=10)  # answering again (or reconnected)
            local.keep(ORG, local.epoch(ORG), [Q], [ALLOW])
            assert _kept(local)
            proxy.stop()  # connection lost: dropped at once, then reconnected
            lost = await _until(lambda: not _kept(local), timeout=2)
            assert lost < 0.1, lost
            proxy.restart()
            await _until(tracking.usable, timeout=10)
            assert tracking.connections >= 2
        finally:
            task.cancel()
            proxy.flowing.set()

    try:
        asyncio.run(scenario())
    finally:
        proxy.stop()


def test_kept_answers_are_bounded_and_dropped_per_organization() -> None:
    local = LocalAnswers(max_answers=3)
    local.tracking = Invalidations("redis://127.0.0.1:1/0", local.changed)
    local.tracking.valid_until = float("inf")  # as if every ping were answered
    queries = [Check(f"u{i}", "ws1", "create_sources") for i in range(3)]
    for q in queries:
        local.keep(ORG, local.epoch(ORG), [q], [ALLOW])
    local.keep(OTHER, local.epoch(OTHER), [Q], [ALLOW])  # the 4th: over the bound
    assert local.answers(OTHER, [Q], None) == [ALLOW]
    assert all(local.answers(ORG, [q], None) is None for q in queries)
    local.keep(ORG, local.epoch(ORG), queries[:1], [ALLOW])
    local.changed(OTHER)  # a report drops that organization's answers only
    assert local.answers(OTHER, [Q], None) is None
    assert local.answers(ORG, queries[:1], None) == [ALLOW]
    local.tracking.valid_until = 0.0  # the connection stalled: nothing is used or kept
    assert local.answers(ORG, queries[:1], None) is None
