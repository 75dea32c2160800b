"""Layer: app. The API process's tracing: one SERVER span per HTTP request (a pure ASGI middleware),
and ``install_tracing``, which sets the process up when tracing is configured.

The span is named ``<METHOD> <route template>`` (``PATCH /scim/v2/Users/{id}``; just the
method for a path no route knows), never by raw path: no user id, group id or token
reaches a span name or attribute. Attributes: ``http.request.method``, ``http.route``,
``http.response.status_code``, ``url.scheme``, ``idsync.request_id``; status ERROR for a
5xx or an exception. An incoming W3C ``traceparent`` is honoured (the IdP's or a
gateway's trace continues here).
"""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI
from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import Receive, Scope, Send

from idsync.http_middleware import HttpMiddleware, NotingSend
from idsync.request_observer import SCIM_PREFIX, scim_route
from models.tracing import install_provider, tracer
from worker.task_spans import install_task_spans

SERVICE: Final = "idsync-api"
METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
_CARRIED: Final = frozenset(f.encode() for f in ("traceparent", "tracestate", "baggage"))


def scim_template(scope: Scope) -> str | None:
    """The template of a SCIM request, as the HTTP metrics label it (``scim_route``),
    from its path before routing (a mount rewrites ``root_path``); None for others."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    rest = path[len(root) :] if root and path.startswith(root) else path
    if rest == SCIM_PREFIX or rest.startswith(SCIM_PREFIX + "/"):
        template, _, _ = scim_route(rest[len(SCIM_PREFIX) :])
        return template
    return None


def matched_template(scope: Scope) -> str | None:
    """The template of the route the router matched (once the app ran), or None."""
    matched = getattr(scope.get("route"), "path", None)
    return matched if isinstance(matched, str) else None


class ServerSpans(HttpMiddleware):
    """``app.add_middleware(ServerSpans)``: outermost, so the span covers the request."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"] if scope["method"] in METHODS else "_OTHER"
        scim = scim_template(scope)
        carrier = {
            key.decode("latin-1"): value.decode("latin-1")
            for key, value in scope.get("headers") or ()
            if key in _CARRIED
        }
        parent = propagate.extract(carrier) if carrier else None
        span = tracer().start_span(
            method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.scheme": scope.get("scheme", "http")},
        )
        token = context.attach(trace.set_span_in_context(span, parent))
        send_noting_status = NotingSend(send)
        try:
            await self.app(scope, receive, send_noting_status)
        except BaseException as exc:
            span.record_exception(exc)
            raise
        finally:
            route = scim or matched_template(scope)
            if route is not None:
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
            status = send_noting_status.status
            span.set_attribute("http.response.status_code", status)
            state = scope.get("state")
            request_id = state.get("request_id") if isinstance(state, dict) else None
            if isinstance(request_id, str):
                span.set_attribute("idsync.request_id", request_id)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end()
            context.detach(token)


def install_tracing(app: FastAPI) -> bool:
    """When tracing is configured: this process's provider, a SERVER span per request
    (outermost: call it after the last ``add_middleware``) and trace context on the
    Celery tasks it sends. Off: nothing at all. Idempotent. -> on."""
    if not install_provider(SERVICE):
        return False
    install_task_spans()
    # FastAPI's own tracing (0.16x "native telemetry", on whenever a tracer provider is
    # installed) would add a second SERVER span named by the SCIM mount's "{path}" and
    # carrying url.path (user and group ids), and spans per dependency and serializer:
    # this middleware's span replaces it. (Older FastAPI has none: nothing to turn off.)
    native = getattr(app, "_telemetry", None)
    if isinstance(native, dict):
        native.update(tracing=False, operation_spans=False)
    if not any(getattr(m, "cls", None) is ServerSpans for m in app.user_middleware):
        app.add_middleware(ServerSpans)
    return True
