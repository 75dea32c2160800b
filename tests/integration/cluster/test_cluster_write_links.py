"""How a coalesced traced write links to its drain, on a Redis Cluster (the hook's
marks run one call at a time there: the context goes first, in a pipeline of its own)."""

from __future__ import annotations

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from redis.cluster import RedisCluster

from tests.support.spans import memory_spans  # noqa: F401 - fixture
from tests.support.write_links_check import check_write_links


def test_a_coalesced_write_is_linked_from_the_drain_on_a_cluster(
    cluster_cache: RedisCluster,
    memory_spans: InMemorySpanExporter,  # noqa: F811
) -> None:
    check_write_links(cluster_cache, "org-links", memory_spans)
