"""Layer: app. Headers on every console response: a Content-Security-Policy that allows
only the console's own files (no inline script, no other origin), no framing, no
referrer outside the site, and no caching of pages that show an organization's data."""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from idsync.http_middleware import HttpMiddleware, NotingSend

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)
NO_STORE = (b"cache-control", b"no-store")
STATIC_PREFIX = "/static/"


class ConsoleHeaders(HttpMiddleware):
    """ASGI middleware of the console sub-app (paths relative to ``/console``)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        static = str(scope.get("path", "")).startswith(scope.get("root_path", "") + STATIC_PREFIX)
        headers = SECURITY_HEADERS if static else (*SECURITY_HEADERS, NO_STORE)
        await self.app(scope, receive, NotingSend(send, headers))
