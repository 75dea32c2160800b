"""Layer: app. ``GET /metrics`` on the API (Prometheus text format; docs/operations.md#metrics)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from idsync.freshness import StateCollector
from models.db.database import Database
from models.metrics import CONTENT_TYPE, authorized, exposition, registry
from models.settings import Settings


def install_metrics_route(app: FastAPI, settings: Settings, database: Database) -> StateCollector:
    state = StateCollector(
        database,
        settings.resolved_cache_redis_url(),
        settings.redis_url,
        max_orgs=settings.metrics_max_orgs,
    )
    app.state.metrics_state = state

    @app.get("/metrics", tags=["health"], include_in_schema=False)
    def metrics_endpoint(request: Request) -> Response:
        """Prometheus metrics of every API process (multiprocess mode) and the state
        gauges (freshness lag, backlogs, queues, rebuilds, live workers)."""
        if not authorized(request.headers.get("authorization", ""), settings):
            return JSONResponse(
                {"detail": "a valid metrics bearer token is required", "field": None},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return Response(exposition(registry(state)), media_type=CONTENT_TYPE)

    return state
