"""Layer: support. OpenTelemetry tracing: whether it is on, and the process's tracer provider.

Off unless the standard OpenTelemetry variables ask for it (``configured``): then each
process (an API process, a worker pool process) installs one SDK tracer provider
(``install_provider``) with a ``BatchSpanProcessor``, so spans leave from a background
thread: a request or a task only appends to a bounded queue (full: spans are dropped,
never waited for) and every export has the exporter's timeout. Off, nothing is
installed: no provider, no middleware, no Celery signal receiver; the spans below the
entry points (``span``) are only started when the current span records, so idle code
pays one context lookup. The SDK reads the rest of its variables itself
(``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``,
``OTEL_BSP_*``, ``OTEL_EXPORTER_OTLP_*``). docs/operations.md, Tracing.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from importlib.metadata import version
from typing import Final

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind
from opentelemetry.util.types import AttributeValue

log = logging.getLogger("idsync.tracing")

TRACER: Final = "idsync"
EXIT_FLUSH_S: Final = 2.0
"""At process exit, spans still queued get this long to reach the collector (a dead
collector never holds an exiting process longer)."""

_PROTOCOLS: Final = frozenset({"", "http/protobuf"})
_provider: TracerProvider | None = None


def configured(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for traces: ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` set, or ``OTEL_TRACES_EXPORTER`` set to
    something other than ``none``; never with ``OTEL_SDK_DISABLED=true``."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters:
        return exporters != "none"
    return any(
        environ.get(name, "").strip()
        for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def _exporters(environ: Mapping[str, str]) -> list[SpanExporter]:
    """The exporters ``OTEL_TRACES_EXPORTER`` names (default ``otlp``): ``otlp`` over
    HTTP/protobuf (the one OTLP transport installed) and ``console``."""
    names = [n.strip() for n in environ.get("OTEL_TRACES_EXPORTER", "otlp").lower().split(",")]
    out: list[SpanExporter] = []
    for name in names:
        if name == "otlp":
            protocol = (
                environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
            ).strip()
            if protocol not in _PROTOCOLS:
                log.warning("OTLP protocol %r is not installed (http/protobuf is)", protocol)
                continue
            # imported only when used: a process with tracing off never loads it
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            out.append(OTLPSpanExporter())  # endpoint, headers, timeout: OTEL_EXPORTER_OTLP_*
        elif name == "console":
            out.append(ConsoleSpanExporter())
        elif name and name != "none":
            log.warning("unknown OTEL_TRACES_EXPORTER %r: ignored", name)
    return out


def resource(default_service: str) -> Resource:
    """The SDK's resource (``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_SERVICE_NAME``), with
    ``default_service`` as the service name and idsync's version when they name none."""
    detected = Resource.create()
    extra: dict[str, AttributeValue] = {}
    if str(detected.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        extra[SERVICE_NAME] = default_service
    if SERVICE_VERSION not in detected.attributes:
        extra[SERVICE_VERSION] = version("idsync")
    return detected.merge(Resource(extra)) if extra else detected


def installed() -> bool:
    """Whether this process has an SDK tracer provider (idsync's, or the host's: e.g.
    ``opentelemetry-instrument``), not the API's no-op default."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def install_provider(default_service: str) -> bool:
    """Install this process's tracer provider when tracing is ``configured`` -> whether
    spans are exported. Once per process: a provider already installed (by an earlier
    call, or by the host program) is kept."""
    if not configured():
        return False
    if installed():
        return True
    exporters = _exporters(os.environ)
    if not exporters:
        return False
    described = resource(default_service)
    provider = TracerProvider(resource=described, shutdown_on_exit=False)
    for exporter in exporters:
        # queue bounded (OTEL_BSP_MAX_QUEUE_SIZE), exported from its own thread
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    global _provider  # noqa: PLW0603 - one provider per process
    _provider = provider
    atexit.register(shutdown)
    log.info("tracing on", extra={"service": described.attributes.get(SERVICE_NAME)})
    return True


def shutdown() -> None:
    """Flush and stop the provider ``install_provider`` installed, waiting at most
    ``EXIT_FLUSH_S`` (the SDK's own exit hook would wait up to 30 s for an export that a
    dead collector holds). At exit, and when a worker pool process ends."""
    global _provider
    provider, _provider = _provider, None
    if provider is None:
        return
    stopper = threading.Thread(target=provider.shutdown, name="idsync-tracing-exit", daemon=True)
    stopper.start()
    stopper.join(EXIT_FLUSH_S)


_TRACER: Final = trace.get_tracer(TRACER)
"""A proxy: it uses whatever provider is installed when a span starts."""


def tracer() -> trace.Tracer:
    """idsync's tracer (the entry points start their root spans with it)."""
    return _TRACER


_UNTRACED: Final[AbstractContextManager[Span]] = nullcontext(INVALID_SPAN)


def span(
    name: str,
    attributes: Mapping[str, AttributeValue] | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
) -> AbstractContextManager[Span]:
    """A child of the current span, made current; only when the current span records
    (tracing on, and this request or task sampled). Else ``INVALID_SPAN``, whose
    ``set_attribute`` does nothing: callers never test whether tracing is on (and pay
    one context lookup, no generator)."""
    if not trace.get_current_span().is_recording():
        return _UNTRACED
    return _TRACER.start_as_current_span(name, kind=kind, attributes=attributes)
