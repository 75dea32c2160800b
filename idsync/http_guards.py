"""Layer: app. What stands between the wire and the non-SCIM routes (health, /api/v1, OpenAPI).

`UnexpectedErrors` — a JSON 500 for whatever escapes the handlers, and a connection that
survives it. Starlette's outermost `ServerErrorMiddleware` answers an unhandled
exception with a plain-text 500 and then re-raises it; uvicorn, seeing an exception
after the response started, closes the connection, and the client's next request on
that keep-alive connection got "connection reset by peer". This middleware sits inside
the request-id middleware: it logs the traceback (the line carries the request id),
answers `{"detail": "internal server error", "field": null, "request_id": …}` and does
not re-raise.

`ApiBodyGuard` — request bodies under /api/v1, before FastAPI reads them:
- at most `MAX_API_BODY_BYTES`; a larger one (declared by Content-Length, or found while
  reading) is 413 if the bearer credential is valid and 401 if not, decided without
  reading the rest of it (FastAPI would read any size in full, then answer 422/401);
- UTF-8 (a surrogate's raw bytes are not) and nested at most `MAX_DEPTH` levels
  (`models.json_text`): else 422, like any other body that is not the JSON the route
  takes. FastAPI itself would take surrogate bytes (`surrogatepass`) and answer a deep
  body with a 400 outside the API's error shape, or a RecursionError later. The check
  routes (`idsync.check_api.CHECK_PATHS`) are left this part: they parse their body once,
  with pydantic's JSON parser, which refuses both itself (422, with these words); a
  check body with a Content-Length within the limit is passed on untouched (the server
  delivers no more than it declares).

Both answer in the /api/v1 error shape `{"detail": …, "field": …}`. SCIM requests pass
both untouched: the body guard acts under /api/v1 only, and nothing escapes the SCIM
mount (`idsync.app.ScimErrors` maps every exception to a SCIM Error body; bodies are
limited by `maxPayloadSize`).
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from idsync.check_api import CHECK_PATHS
from idsync.http_middleware import HttpMiddleware, NotingSend
from idsync.logs import get_request_id
from models import json_text
from models.db.admin_keys import verify_admin_key
from models.db.database import Database
from models.settings import Settings
from scim.offload import in_thread

API_PREFIX = "/api/v1"
CHECK_PREFIX = "/api/v1/check"
MAX_API_BODY_BYTES = 1024 * 1024  # 1 MiB: a 1000-check batch is ~200 KB
log = logging.getLogger("idsync.http")


def _error(status: int, detail: str, field: str | None, **headers: str) -> JSONResponse:
    return JSONResponse({"detail": detail, "field": field}, status_code=status, headers=headers)


class UnexpectedErrors(HttpMiddleware):
    """See the module doc: a JSON 500 that leaves the connection usable."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        sending = NotingSend(send)
        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            if sending.started:  # half a response is out: closing the connection is all that's left
                raise
            log.error(
                "unhandled error",
                exc_info=exc,
                extra={"method": scope.get("method"), "path": scope.get("path")},
            )
            body: dict[str, Any] = {"detail": "internal server error", "field": None}
            rid = get_request_id()
            if rid is not None:
                body["request_id"] = rid
            await JSONResponse(body, status_code=500)(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or []:
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class ApiBodyGuard:
    """See the module doc: /api/v1 bodies are bounded, UTF-8 and shallow."""

    def __init__(
        self,
        app: ASGIApp,
        database: Database,
        settings: Settings,
        max_bytes: int = MAX_API_BODY_BYTES,
    ) -> None:
        self.app = app
        self.database = database
        self.check_token = Settings.reveal(settings.check_api_token)
        self.max_bytes = max_bytes

    def _admin_key_is_valid(self, key: str) -> bool:
        with self.database.read() as session:
            return verify_admin_key(session, key) is not None

    async def _authenticated(self, scope: Scope) -> bool:
        scheme, _, given = (_header(scope, b"authorization") or "").partition(" ")
        given = given.strip()
        if scheme.lower() != "bearer" or not given:
            return False
        path: str = scope["path"]
        if (
            self.check_token
            and path.startswith(CHECK_PREFIX)
            and hmac.compare_digest(given.encode(), self.check_token.encode())
        ):
            return True
        return await in_thread(self._admin_key_is_valid, given)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        if await self._authenticated(scope):
            response = _error(413, f"request body exceeds {self.max_bytes} bytes", None)
        else:
            response = _error(
                401,
                "missing or wrong bearer token",
                "Authorization",
                **{"WWW-Authenticate": "Bearer"},
            )
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == API_PREFIX or path.startswith(API_PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        if declared is not None and declared.isdigit() and path in CHECK_PATHS:
            # the server holds the body to its declared length (within the limit): nothing
            # to bound, and these routes parse their body once, strictly, themselves
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        raw = b"".join(chunks)
        # the check routes parse their body once, strictly, themselves (StrictJsonRoute)
        problem = json_text.body_problem(raw) if raw and path not in CHECK_PATHS else None
        if problem is not None:
            await _error(422, problem, None)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def install_http_guards(app: FastAPI, database: Database, settings: Settings) -> None:
    """Add both guards as the innermost middleware (inside the request-id middleware,
    whenever this is called before the app serves), and answer 404 instead of a 307
    redirect for a path with a trailing slash. Idempotent."""
    if getattr(app.state, "http_guards", False):
        return
    app.state.http_guards = True
    app.router.redirect_slashes = False
    app.user_middleware.append(Middleware(UnexpectedErrors))
    app.user_middleware.append(Middleware(ApiBodyGuard, database=database, settings=settings))
