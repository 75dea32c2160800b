"""Layer: app. An unexpected error in a console page: logged with its traceback under the
request id and answered with a plain HTML 500 that names the request id, without
re-raising, so the connection stays usable (as ``idsync.http_guards.UnexpectedErrors``
does for the API; a mounted Starlette app's own error middleware would answer and then
raise again)."""

from __future__ import annotations

import html
import logging

from starlette.responses import HTMLResponse
from starlette.types import Receive, Scope, Send

from idsync.http_middleware import HttpMiddleware, NotingSend
from idsync.logs import get_request_id

log = logging.getLogger("idsync.console")


class ConsoleErrors(HttpMiddleware):
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        sending = NotingSend(send)
        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            if sending.started:
                raise
            log.error("console: unhandled error", exc_info=exc, extra={"path": scope.get("path")})
            rid = html.escape(get_request_id() or "")
            body = (
                "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Error</title>"
                "</head><body><h1>Something went wrong</h1><p>The error is logged under request "
                f"id <code>{rid}</code>.</p></body></html>"
            )
            await HTMLResponse(body, status_code=500)(scope, receive, send)
