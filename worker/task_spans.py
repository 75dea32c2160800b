"""Layer: worker. Trace context through Celery: a PRODUCER span per task sent, with its W3C
``traceparent`` in the message headers, and a CONSUMER span per task run, its child.

Connected to Celery's signals (``before_task_publish`` / ``after_task_publish`` where a
task is sent, ``task_prerun`` / ``task_postrun`` / ``task_failure`` where it runs) by
``install_task_spans``, only when tracing is configured; a worker pool process installs
its tracer provider on ``worker_process_init`` (prefork children, and the solo pool).
So a task sent while a SCIM write's span is current (the after-commit hook enqueueing a
drain) runs in that write's trace; one sent with no trace (beat's sweep) starts its own.

Span names carry the task name only (``send idsync.drain.bulk``, ``run
idsync.drain.bulk``), never arguments; attributes: ``messaging.system`` (celery),
``messaging.destination.name`` (the queue), ``messaging.message.id`` (the task id),
``celery.task_name``, and on the CONSUMER span ``celery.state``.
"""

from __future__ import annotations

from contextvars import Token
from typing import Any, Final

from celery.signals import (
    after_task_publish,
    before_task_publish,
    task_failure,
    task_postrun,
    task_prerun,
    worker_process_init,
    worker_process_shutdown,
)
from opentelemetry import context, propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from models.tracing import configured, install_provider, shutdown, tracer

SERVICE: Final = "idsync-worker"
OPEN_MAX: Final = 1024
"""Spans kept open between a signal and its pair, at most (a publish that raised never
sends ``after_task_publish``: its span is ended when the table is full)."""
_FAILED: Final = frozenset({"FAILURE", "RETRY"})

_sending: dict[str, Span] = {}
_running: dict[str, tuple[Span, Token[Context]]] = {}


class _RequestGetter(Getter[Any]):
    """Reads ``traceparent`` / ``tracestate`` from a task's request: Celery makes every
    message header an attribute of ``task.request``."""

    def get(self, carrier: Any, key: str) -> list[str] | None:
        value = getattr(carrier, key, None)
        if value is None:
            headers = getattr(carrier, "headers", None)
            value = headers.get(key) if isinstance(headers, dict) else None
        return [value] if isinstance(value, str) else None

    def keys(self, carrier: Any) -> list[str]:
        return []


_GETTER: Final = _RequestGetter()


def _bounded(table: dict[str, Any]) -> None:
    if len(table) >= OPEN_MAX:
        for key in list(table):  # a copy: other threads may send meanwhile
            value = table.pop(key, None)
            if value is not None:
                (value[0] if isinstance(value, tuple) else value).end()


def _before_publish(
    sender: str | None = None,
    headers: dict[str, Any] | None = None,
    routing_key: str | None = None,
    **_: Any,
) -> None:
    if headers is None:
        return
    name = str(headers.get("task") or sender or "unknown")
    task_id = str(headers.get("id") or "")
    span = tracer().start_span(
        f"send {name}",
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "celery",
            "messaging.operation.type": "send",
            "messaging.destination.name": routing_key or "",
            "messaging.message.id": task_id,
            "celery.task_name": name,
        },
    )
    propagate.inject(headers, context=trace.set_span_in_context(span))
    if span.is_recording() and task_id:
        _bounded(_sending)
        _sending[task_id] = span


def _after_publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
    span = _sending.pop(str((headers or {}).get("id") or ""), None)
    if span is not None:
        span.end()


def _prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id is None or task is None:
        return
    parent = propagate.extract(getattr(task, "request", None), getter=_GETTER)
    name = str(getattr(task, "name", None) or "unknown")
    span = tracer().start_span(
        f"run {name}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "celery",
            "messaging.operation.type": "process",
            "messaging.message.id": task_id,
            "celery.task_name": name,
        },
    )
    token = context.attach(trace.set_span_in_context(span, parent))
    _bounded(_running)
    _running[task_id] = (span, token)


def _failure(task_id: str | None = None, exception: BaseException | None = None, **_: Any) -> None:
    entry = _running.get(task_id or "")
    if entry is not None and exception is not None:
        entry[0].record_exception(exception)


def _postrun(task_id: str | None = None, state: str | None = None, **_: Any) -> None:
    entry = _running.pop(task_id or "", None)
    if entry is None:
        return
    span, token = entry
    if state is not None:
        span.set_attribute("celery.state", state)
        if state in _FAILED:
            span.set_status(Status(StatusCode.ERROR))
    context.detach(token)
    span.end()


def _process_init(**_: Any) -> None:
    install_provider(SERVICE)


def _process_shutdown(**_: Any) -> None:
    shutdown()


def install_task_spans() -> bool:
    """Connect the signal receivers when tracing is configured (idempotent) -> on."""
    if not configured():
        return False
    for signal, receiver in (
        (before_task_publish, _before_publish),
        (after_task_publish, _after_publish),
        (task_prerun, _prerun),
        (task_failure, _failure),
        (task_postrun, _postrun),
        (worker_process_init, _process_init),
        (worker_process_shutdown, _process_shutdown),
    ):
        signal.connect(receiver, weak=False, dispatch_uid=f"idsync.tracing.{receiver.__name__}")
    return True
