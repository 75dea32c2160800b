"""Layer: app. HTTP metrics and the SCIM request log, as one pure ASGI middleware.

It is ordinary app middleware (``idsync.app``), so every request is counted, SCIM
included. Routes are labelled by template (``/scim/v2/Users/{id}``,
``/api/v1/workspaces/{ws}``; ``unmatched`` for paths no route knows), never by raw
path: a SCIM request's from its path (``scim_route``), any other from the route
Starlette's router matched.

For SCIM requests with the request log on, it also keeps what the log needs (the
request body as received, the status, an error's body, ``Location``, the User-Agent,
the token's SHA-256) and hands a ``Captured`` to the log writer after the response is
sent: the request path does no redaction, parsing or database work for the log. The
change revision a write produced reaches the record through ``note_changes``, a
``Database`` listener that runs in the request's context.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from idsync.http_middleware import HttpMiddleware
from idsync.scim_log.writer import Captured, ScimLogWriter
from models.credentials import hash_secret
from models.db.database import CommittedChange
from models.metrics import metrics

SCIM_PREFIX: Final = "/scim/v2"
UNMATCHED: Final = "unmatched"
ERROR_BODY_MAX: Final = 8192
CHILDREN_KEPT: Final = 1024

_RESOURCES: Final = {"Users": "User", "Groups": "Group"}
_FIXED: Final = frozenset(
    {
        "",
        "/",
        "/Users",
        "/Groups",
        "/Users/.search",
        "/Groups/.search",
        "/.search",
        "/Bulk",
        "/ServiceProviderConfig",
        "/ResourceTypes",
        "/Schemas",
        "/Me",
    }
)
_WITH_ID: Final = frozenset({"Users", "Groups", "ResourceTypes", "Schemas"})


def scim_route(rest: str) -> tuple[str, str | None, str | None]:
    """``(template, resource type, resource id)`` of a path below ``/scim/v2``."""
    if rest in _FIXED:
        return SCIM_PREFIX + rest, _RESOURCES.get(rest.strip("/").split("/")[0]), None
    parts = rest.split("/")
    if len(parts) == 3 and parts[1] in _WITH_ID and parts[2]:
        return f"{SCIM_PREFIX}/{parts[1]}/{{id}}", _RESOURCES.get(parts[1]), parts[2]
    return f"{SCIM_PREFIX}/{UNMATCHED}", None, None


def idp_of(user_agent: str) -> str:
    """The identity provider a User-Agent names, as far as it can be told."""
    ua = user_agent.lower()
    if "okta" in ua:
        return "okta"
    if any(word in ua for word in ("microsoft", "azure", "entra", "syncfabric", "aad")):
        return "entra"
    for name in ("onelogin", "jumpcloud", "google", "pingone", "cyberark", "rippling"):
        if name in ua:
            return name
    return "other" if ua else "unknown"


@dataclass(slots=True)
class Observed:
    """The per-request record a write's change listener fills in."""

    revision: int | None = None


observed_var: contextvars.ContextVar[Observed | None] = contextvars.ContextVar(
    "idsync_observed_request", default=None
)


def note_changes(committed: list[CommittedChange]) -> None:
    """``Database`` listener: the revision the current request's write produced."""
    obs = observed_var.get()
    if obs is not None and committed:
        top = max(c.revision for c in committed)
        obs.revision = top if obs.revision is None else max(obs.revision, top)


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers") or ():
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def _scim_rest(path: str) -> str | None:
    """The part of ``path`` below ``/scim/v2``, or None when it is not a SCIM path."""
    if path.startswith(SCIM_PREFIX) and path[len(SCIM_PREFIX) : len(SCIM_PREFIX) + 1] in (
        "",
        "/",
    ):
        return path[len(SCIM_PREFIX) :]
    return None


class RequestObserver(HttpMiddleware):
    """Counts every HTTP request; for a SCIM request, also feeds the request log.

    A SCIM request (its path under ``/scim/v2``) is labelled from its path; any other by
    the route template Starlette's router matched (``scope["route"]``).
    ``count``: record the HTTP metrics (off: only the request log).
    ``span``: the tracing hook (``idsync.tracing``), or None."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        count: bool = True,
        request_log: ScimLogWriter | None = None,
        span: Callable[[Scope, str], Any] | None = None,
    ) -> None:
        super().__init__(app)
        self.request_log = request_log
        self.span = span
        self.count = count
        m = metrics()
        self._requests = m.http_requests
        self._duration = m.http_duration
        # Children by label values, bound once: a labels() lookup takes a lock and builds
        # a key each time. Bounded like the labels themselves (route templates, methods
        # and statuses are few); emptied past CHILDREN_KEPT all the same.
        self._counted: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        method: str = scope["method"]
        resource_type = resource_id = None
        rest = _scim_rest(_route_path(scope))
        if rest is not None:
            route, resource_type, resource_id = scim_route(rest)
        else:
            route = UNMATCHED
        exchange = _Exchange(send, capture=rest is not None and self.request_log is not None)
        token = observed_var.set(exchange.observed) if exchange.capture else None
        span = self.span(scope, route) if self.span is not None else None
        if span is not None:
            span.__enter__()
        try:
            await self.app(scope, exchange.receive_from(receive), exchange.send)
        finally:
            elapsed = time.perf_counter() - started
            if span is not None:
                span.__exit__(None, None, None)
            if rest is None:
                route = getattr(scope.get("route"), "path", None) or UNMATCHED
            if self.count:
                key = (route, method, exchange.status)
                children = self._counted.get(key)
                if children is None:
                    if len(self._counted) >= CHILDREN_KEPT:
                        self._counted.clear()
                    children = self._counted[key] = (
                        self._requests.labels(route, method, str(exchange.status)),
                        self._duration.labels(route, method),
                    )
                children[0].inc()
                children[1].observe(elapsed)
            if token is not None and self.request_log is not None:  # a captured SCIM request
                observed_var.reset(token)
                self.request_log.submit(
                    _captured(scope, method, route, elapsed, resource_type, resource_id, exchange)
                )


class _Exchange:
    """The status of a response and, when ``capture``, what the request log keeps."""

    def __init__(self, send: Send, *, capture: bool) -> None:
        self._send = send
        self.capture = capture
        self.status = 500
        self.body = bytearray()
        self.error_body = bytearray()
        self.location: str | None = None
        self.observed = Observed()

    def receive_from(self, receive: Receive) -> Receive:
        if not self.capture:
            return receive

        async def receive_capturing() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                self.body.extend(message.get("body", b""))
            return message

        return receive_capturing

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = int(message["status"])
            if self.capture and self.status == 201:
                for key, value in message.get("headers", ()):
                    if key.lower() == b"location":
                        self.location = value.decode("latin-1")
        elif (
            self.capture
            and self.status >= 400
            and kind == "http.response.body"
            and len(self.error_body) < ERROR_BODY_MAX
        ):
            self.error_body.extend(message.get("body", b"")[:ERROR_BODY_MAX])
        await self._send(message)


def _captured(
    scope: Scope,
    method: str,
    route: str,
    elapsed: float,
    resource_type: str | None,
    resource_id: str | None,
    exchange: _Exchange,
) -> Captured:
    auth = _header(scope, b"authorization")
    scheme, _, presented = auth.partition(" ")
    presented = presented.strip()
    digest = hash_secret(presented) if scheme.lower() == "bearer" and presented else None
    user_agent = _header(scope, b"user-agent")
    state = scope.get("state")
    return Captured(
        at=time.time() - elapsed,
        method=method,
        route=route,
        path=scope["path"],
        query=scope.get("query_string", b"").decode("latin-1"),
        status=exchange.status,
        duration_ms=elapsed * 1000,
        token_digest=digest,
        user_agent=user_agent,
        idp=idp_of(user_agent),
        request_id=state.get("request_id") if isinstance(state, dict) else None,
        resource_type=resource_type,
        resource_id=resource_id,
        revision=exchange.observed.revision,
        body=bytes(exchange.body),
        error_body=bytes(exchange.error_body),
        location=exchange.location,
    )
