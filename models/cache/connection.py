"""Layer: store. Connecting to the permission cache's Redis: one server, or a Redis Cluster.

``CACHE_REDIS_URL`` (else ``REDIS_URL``) names one server. With ``cluster=true`` in its
query string (``redis://10.0.0.5:6379/0?cluster=true``; also ``1`` / ``yes``) it names
any node of a Redis Cluster: the client (``redis.cluster.RedisCluster``) reads the slot
map from it and talks to every master. A cluster has database 0 only. Every key of an
organization carries its hash tag (``models.cache.layout``), so each script call and each
transaction touches one slot.

The Celery broker never uses this: it stays on a single Redis (docs/operations.md,
Redis topology).
"""

from __future__ import annotations

from typing import Any, Final, TypeAlias
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.cluster import ClusterPipeline, RedisCluster
from redis.exceptions import RedisClusterException

CacheRedis: TypeAlias = redis.Redis | RedisCluster
"""A client of the permission cache: a single server's or a cluster's."""
CachePipeline: TypeAlias = redis.client.Pipeline | ClusterPipeline

CLUSTER_PARAM: Final = "cluster"
_TRUE: Final = frozenset({"true", "1", "yes"})
_FALSE: Final = frozenset({"false", "0", "no", ""})


def split_cluster_url(url: str) -> tuple[bool, str]:
    """(is a cluster URL, the URL without the ``cluster`` parameter); ValueError for a
    ``cluster`` value that is neither true nor false. The one reading of the parameter
    (the blocking clients here, the check API's ``redis.asyncio`` client)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    flags = [v.lower() for k, v in query if k.lower() == CLUSTER_PARAM]
    if not flags:
        return False, url
    bad = [v for v in flags if v not in _TRUE | _FALSE]
    if bad:
        raise ValueError(f"{CLUSTER_PARAM}={bad[0]!r} in the Redis URL: use true or false")
    rest = urlencode([(k, v) for k, v in query if k.lower() != CLUSTER_PARAM])
    return flags[-1] in _TRUE, urlunsplit(parts._replace(query=rest))


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` names a node of a Redis Cluster (``?cluster=true``)."""
    return split_cluster_url(url)[0]


def cache_redis(url: str, **options: Any) -> CacheRedis:
    """A client of the permission cache at ``url`` (``options``: timeouts, retry, …).

    A single server's client connects on first use. A cluster's reads the slot map now:
    a cluster that cannot be reached raises ``redis.ConnectionError`` (a RedisError like
    every other Redis failure, so callers' 503 / retry handling applies unchanged).
    """
    cluster, plain = split_cluster_url(url)
    if not cluster:
        return redis.Redis.from_url(plain, **options)
    db = urlsplit(plain).path.strip("/")
    if db not in ("", "0"):
        raise ValueError(f"a Redis Cluster has database 0 only, not {db!r}: drop /{db}")
    try:
        return RedisCluster.from_url(plain, **options)
    except RedisClusterException as exc:
        raise redis.ConnectionError(f"Redis Cluster: {exc}") from exc


def is_cluster(client: CacheRedis) -> bool:
    return isinstance(client, RedisCluster)
