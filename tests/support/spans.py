"""Spans in tests: an in-process exporter (``memory_spans``) and a tiny OTLP/HTTP
collector (``Collector``) that a worker process exports to.

While a test holds ``memory_spans`` the process has an SDK tracer provider recording
into memory; afterwards the API's no-op default is put back (as the OpenTelemetry
project's own test utilities do), so later tests in the process (FastAPI's native
telemetry included, which turns on whenever a provider is installed) run as with
tracing off. Tracers fetched meanwhile keep the SDK tracer; its sampler records only
while a test holds the fixture.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util._once import Once
from opentelemetry.util.types import Attributes


class Switch(Sampler):
    """Records (and samples) while ``on``; drops otherwise."""

    on = False

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        decision = Decision.RECORD_AND_SAMPLE if self.on else Decision.DROP
        return SamplingResult(decision, attributes)

    def get_description(self) -> str:
        return "tests.support.spans.Switch"


_SWITCH = Switch()
_EXPORTER = InMemorySpanExporter()


def _install() -> None:
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        pytest.skip("another tracer provider is installed in this process")
    ours = TracerProvider(sampler=_SWITCH, shutdown_on_exit=False)
    ours.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(ours)


def _uninstall() -> None:
    """Back to the no-op default (private globals: the API has no public reset)."""
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None


@pytest.fixture
def memory_spans() -> Iterator[InMemorySpanExporter]:
    """The finished spans of this test (in-process), recorded while it runs."""
    _install()
    _EXPORTER.clear()
    _SWITCH.on = True
    try:
        yield _EXPORTER
    finally:
        _SWITCH.on = False
        _EXPORTER.clear()
        _uninstall()


def by_name(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


# -- a tiny OTLP/HTTP collector ---------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One span as a collector received it (ids in hex, as W3C writes them)."""

    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    links: list[tuple[str, str, dict[str, Any]]]
    service: str


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


@dataclass
class Collector:
    """``POST /v1/traces`` (OTLP/HTTP protobuf) on 127.0.0.1; keeps what it received."""

    spans: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"

    def start(self) -> None:
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                collector.take(request)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def take(self, request: ExportTraceServiceRequest) -> None:
        got: list[Received] = []
        for rs in request.resource_spans:
            resource = {a.key: _value(a.value) for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    got.append(
                        Received(
                            name=s.name,
                            kind=s.kind,
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_span_id=s.parent_span_id.hex(),
                            attributes={a.key: _value(a.value) for a in s.attributes},
                            links=[
                                (
                                    link.trace_id.hex(),
                                    link.span_id.hex(),
                                    {a.key: _value(a.value) for a in link.attributes},
                                )
                                for link in s.links
                            ],
                            service=str(resource.get("service.name", "")),
                        )
                    )
        with self.lock:
            self.spans.extend(got)

    def named(self, name: str) -> list[Received]:
        with self.lock:
            return [s for s in self.spans if s.name == name]


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    c.start()
    try:
        yield c
    finally:
        c.stop()


def hex_ids(span: ReadableSpan) -> tuple[str, str, str]:
    """``(trace id, span id, parent span id)`` of an in-process span, in hex ('' for no
    parent), comparable with ``Received``."""
    ctx = span.get_span_context()
    assert ctx is not None
    parent = span.parent.span_id.to_bytes(8, "big").hex() if span.parent is not None else ""
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}", parent
