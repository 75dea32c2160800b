"""The ASGI application: SCIM under /scim/v2, health probes, and later the admin and
check APIs as separate routers on the same app."""

from __future__ import annotations

import logging
import time
import uuid

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from idsync.settings import Settings
from models.db.database import Database
from scim.discovery import Limits
from scim.http import http_exception_response
from scim.routes import ScimApi, ScimConfig

SCIM_PREFIX = "/scim/v2"
log = logging.getLogger("idsync.http")


class RequestIdMiddleware:
    """Assigns a request id (or keeps a sane incoming X-Request-Id) and logs each request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from idsync.logs import request_id_var

        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status_holder = {"status": 500}

        async def send_with_id(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = int(message["status"])  # type: ignore[call-overload]
                headers = list(message.get("headers", []))  # type: ignore[call-overload]
                headers.append((b"x-request-id", rid.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)  # type: ignore[arg-type]
        finally:
            log.info(
                "request",
                extra={
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status_holder["status"],
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            request_id_var.reset(token)


def create_app(settings: Settings, db: Database | None = None) -> FastAPI:
    """Build the app. The caller owns `db` when given (tests); else one is made here."""
    database = db or Database(settings.resolved_database_url(), pool_size=settings.db_pool_size)
    app = FastAPI(
        title="idsync",
        version="0.1.0",
        description="SCIM 2.0 identity sync, access model and permission checks",
    )
    app.state.db = database
    app.state.settings = settings

    scim = ScimApi(
        database,
        ScimConfig(
            limits=Limits(
                max_results=settings.scim_max_results,
                max_bulk_operations=settings.scim_max_bulk_operations,
                max_payload_bytes=settings.scim_max_payload_bytes,
            ),
            default_count=settings.scim_default_count,
            public_base_url=settings.public_base_url,
            token_cache_s=settings.scim_token_cache_s,
        ),
    )

    # Routes match in the order they are added, and FastAPI tries every route of an
    # included router in turn (no prefix shortcut): the hot paths go first, the ~40
    # admin routes last (measured: /healthz behind them cost 0.3 ms more per request).
    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process serves requests (answered on the event loop itself)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> Response:
        """Readiness: the database answers."""
        if database.ping():
            return JSONResponse({"status": "ready", "database": "ok"})
        return JSONResponse({"status": "unavailable", "database": "down"}, status_code=503)

    app.state.scim_tokens = scim.tokens  # operators' tools and tests reach the cache here
    app.mount(SCIM_PREFIX, scim.router())

    from idsync.check_api import check_router
    from worker.hooks import install_change_hook

    app.state.change_hook = install_change_hook(database, settings)
    app.include_router(check_router(settings, database))

    from idsync.admin_api import install_admin_api

    install_admin_api(app)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/scim/"):
            return http_exception_response(exc)
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=dict(exc.headers or {})
        )

    app.add_middleware(RequestIdMiddleware)
    return app
