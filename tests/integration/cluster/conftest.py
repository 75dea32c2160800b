"""A local 3-master Redis Cluster (``tests/support/redis_cluster.py``) for the cache.

One cluster per test session (started on first use, ~2 s); every test gets it emptied,
script caches included. Missing ``redis-server`` / ``redis-cli`` fails the tests that
need it (never a skip): scripts/test.sh installs redis-server, which brings redis-cli.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis.cluster import RedisCluster

from models.cache.connection import cache_redis
from tests.support.redis_cluster import ClusterError, LocalCluster


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
    except ClusterError as exc:
        pytest.fail(f"cannot start the local Redis Cluster: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster_cache(redis_cluster: LocalCluster) -> Iterator[RedisCluster]:
    """The permission cache's client on the emptied cluster, made from its URL
    (``…?cluster=true``) exactly as the services make it."""
    redis_cluster.flush()
    client = cache_redis(redis_cluster.url)
    assert isinstance(client, RedisCluster)
    try:
        yield client
    finally:
        client.close()
