"""Layer: worker. How a traced write links to the drain that recomputes it, when drains are batched.

The after-commit hook enqueues a drain task only when its mark sets the wake flag (the
first write of a burst): that task carries the write's trace context in its message
headers (``worker.task_spans``), so its spans are children in the write's trace. A
later write whose mark finds the flag set enqueues nothing: the drain on its way (or
running, asked to go round once more) recomputes its users too. For those writes the
hook also leaves the write's ``traceparent`` beside the dirty mark, in the same
pipeline and before the mark (``note_write``: a drain that sees the mark finds the
context), on a capped, expiring list per drain; at the start of every round, the
drain takes the list and adds each context as a span link on its task span
(``link_writes``), skipping its own trace. So the trace of a coalesced write ends at
its publish span, and the drain task that recomputed it points to it.

Only when tracing is on and the current span records: off, neither touches Redis.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import redis
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from models.cache.writer import CacheWriter, ScriptPipeline

WAITING_MAX: Final = 64
"""Contexts kept per drain (the oldest fall off); also the links one round adds."""
WAITING_MS: Final = 60_000
"""A list no drain takes (cache not built, no worker, drain not sampled) expires."""
LINK_ATTRIBUTES: Final = {"idsync.link": "coalesced write"}

_W3C: Final = TraceContextTextMapPropagator()


def note_write(writer: CacheWriter, pipe: ScriptPipeline, wakes: Iterable[str]) -> None:
    """Queue the current span's ``traceparent`` for the drains of ``wakes`` in ``pipe``
    (ahead of the marks queued after it); on Redis Cluster, where ``pipe`` runs each
    call at once, in a pipeline of its own, sent now, before the marks."""
    if not trace.get_current_span().is_recording():
        return
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    traceparent = carrier.get("traceparent")
    if traceparent is None:
        return
    own = pipe if isinstance(pipe, redis.client.Pipeline) else writer.redis.pipeline()
    for wake in sorted(set(wakes)):
        key = writer.keys.traces(wake)
        own.rpush(key, traceparent)
        own.ltrim(key, -WAITING_MAX, -1)
        own.pexpire(key, WAITING_MS)
    if own is not pipe:
        own.execute()


def link_writes(writer: CacheWriter, wake: str) -> int:
    """Take the contexts waiting for drain ``wake`` and link them from the current
    span (the drain's task span), except those of its own trace -> links added."""
    current = trace.get_current_span()
    if not current.is_recording():
        return 0
    taken = writer.redis.lpop(writer.keys.traces(wake), WAITING_MAX)
    own = current.get_span_context().trace_id
    added = 0
    for value in taken or ():
        text = value.decode() if isinstance(value, bytes) else str(value)
        linked = trace.get_current_span(_W3C.extract({"traceparent": text})).get_span_context()
        if linked.is_valid and linked.trace_id != own:
            current.add_link(linked, LINK_ATTRIBUTES)
            added += 1
    return added
