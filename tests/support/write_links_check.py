"""The write-links behaviour, checked the same way on a single Redis and on a Redis
Cluster (``tests/integration/worker/test_write_links.py``, ``tests/integration/cluster``)."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from models.cache.connection import CacheRedis
from models.cache.writer import CacheWriter
from models.db.database import CommittedChange
from models.tracing import tracer
from worker.hooks import ChangeHook
from worker.lanes import BULK
from worker.write_links import LINK_ATTRIBUTES, WAITING_MAX, WAITING_MS, link_writes


def check_write_links(client: CacheRedis, org_id: str, spans: InMemorySpanExporter) -> None:
    """Traced writes leave their context beside their marks (one sends the drain, the
    next is coalesced); a drain's span links the coalesced one, not its own trace; the
    list is capped and expires; untraced writes leave nothing."""
    sent: list[tuple[str, str]] = []
    hook = ChangeHook(client, lambda org, wake: sent.append((org, wake)))
    writer = CacheWriter(client, org_id)
    key = writer.keys.traces(BULK)

    def write(user: str, revision: int) -> Any:
        with tracer().start_as_current_span("write") as current:
            hook([CommittedChange(org_id, revision, "user.patched", (user,), ())])
            return current.get_span_context()

    hook([CommittedChange(org_id, 1, "user.patched", ("u0",), ())])  # untraced
    assert client.exists(key) == 0
    assert sent == [(org_id, BULK)]
    client.delete(writer.keys.wake(BULK))  # the next write sends a drain again

    first = write("u1", 2)  # sends the drain: its trace continues in the task
    second = write("u2", 3)  # coalesced: only the link reaches it
    assert sent == [(org_id, BULK)] * 2
    assert 0 < client.pttl(key) <= WAITING_MS

    with tracer().start_as_current_span("run idsync.drain.bulk", context=_child_of(first)):
        assert link_writes(writer, BULK) == 1
        current = trace.get_current_span()
        links = list(current.links)  # type: ignore[attr-defined]
    publish = [  # the write's publish span is current when its context is noted
        s.context.span_id
        for s in spans.get_finished_spans()
        if s.name == "idsync.change.publish"
        and s.context is not None
        and s.context.trace_id == second.trace_id
    ]
    assert [(link.context.trace_id, link.context.span_id) for link in links] == [
        (second.trace_id, publish[0])
    ]
    assert dict(links[0].attributes or {}) == LINK_ATTRIBUTES
    assert client.exists(key) == 0  # taken

    for i in range(WAITING_MAX + 6):
        write(f"m{i}", 10 + i)
    assert client.llen(key) == WAITING_MAX  # the oldest fell off


def _child_of(parent: Any) -> Any:
    return trace.set_span_in_context(trace.NonRecordingSpan(parent))
