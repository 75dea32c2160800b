"""How a coalesced traced write links to its drain, on a single Redis (the cluster
variant: tests/integration/cluster/test_cluster_write_links.py)."""

from __future__ import annotations

import redis
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.support.spans import memory_spans  # noqa: F401 - fixture
from tests.support.write_links_check import check_write_links


def test_a_coalesced_write_is_linked_from_the_drain(
    cache: redis.Redis,
    memory_spans: InMemorySpanExporter,  # noqa: F811
) -> None:
    check_write_links(cache, "org-links", memory_spans)
