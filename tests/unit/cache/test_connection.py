"""CACHE_REDIS_URL forms: a single server, or a Redis Cluster node (``?cluster=true``)."""

from __future__ import annotations

import pytest
import redis

from models.cache.connection import cache_redis, is_cluster_url
from tests.support.redis_cluster import free_ports


@pytest.mark.parametrize(
    ("url", "cluster"),
    [
        ("redis://127.0.0.1:6379/0", False),
        ("redis://127.0.0.1:6379/0?cluster=false", False),
        ("redis://127.0.0.1:6379/0?cluster=true", True),
        ("rediss://u:p@cache.internal:6380?cluster=yes&ssl_cert_reqs=none", True),
        ("redis://127.0.0.1:7000?CLUSTER=1", True),
    ],
)
def test_cluster_urls_are_told_apart(url: str, cluster: bool) -> None:
    assert is_cluster_url(url) is cluster


def test_a_single_server_url_makes_a_plain_client_without_the_parameter() -> None:
    client = cache_redis("redis://127.0.0.1:6379/4?cluster=false&socket_timeout=2")
    assert type(client) is redis.Redis
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["db"] == 4 and kwargs["socket_timeout"] == 2 and "cluster" not in kwargs


def test_malformed_cluster_urls_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="cluster='maybe'"):
        is_cluster_url("redis://127.0.0.1:6379?cluster=maybe")
    with pytest.raises(ValueError, match="database 0 only"):
        cache_redis("redis://127.0.0.1:6379/3?cluster=true")


def test_an_unreachable_cluster_is_a_redis_connection_error() -> None:
    """A RedisError (the callers' 503 / retry handling), not RedisClusterException."""
    (port,) = free_ports(1)
    with pytest.raises(redis.ConnectionError, match="Redis Cluster"):
        cache_redis(f"redis://127.0.0.1:{port}/0?cluster=true", socket_connect_timeout=1)
