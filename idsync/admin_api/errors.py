"""Layer: app. /api/v1 errors: JSON ``{"detail": ..., "field": ...}`` with a 4xx status, or 503
with ``Retry-After`` when PostgreSQL or the permission cache's Redis cannot answer."""

from __future__ import annotations

import logging

import redis
import sqlalchemy.exc
from fastapi import Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from models.access.errors import ValidationError as AccessValidationError
from models.db.config_errors import ConfigError
from models.db.database import CommitRefused

API_PREFIX = "/api/v1"
DATABASE_RETRY_AFTER_S = 5
CACHE_RETRY_AFTER_S = 1
log = logging.getLogger("idsync.api")

UNAVAILABLE: tuple[type[Exception], ...] = (
    CommitRefused,
    sqlalchemy.exc.OperationalError,  # PostgreSQL unreachable, connection lost
    sqlalchemy.exc.TimeoutError,  # no pooled connection came free in time
    redis.ConnectionError,  # Redis unreachable, connection lost, still loading
    redis.TimeoutError,  # Redis stalled past the client's timeout
)
"""What `unavailable_handler` answers with 503 (registered for each)."""


def error_response(
    status: int, detail: str, field: str | None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"detail": detail, "field": field}, status_code=status, headers=headers)


async def unavailable_handler(_request: Request, exc: Exception) -> Response:
    """503 in the API's error shape, with ``Retry-After``: a backend did not answer."""
    if isinstance(exc, CommitRefused):
        detail, retry_after = exc.detail, exc.retry_after_s
    elif isinstance(exc, redis.RedisError):
        detail = "the permission cache (Redis) is unavailable; retry later"
        retry_after = CACHE_RETRY_AFTER_S
    else:
        detail = "the database is unavailable; retry later"
        retry_after = DATABASE_RETRY_AFTER_S
    log.warning("backend unavailable: %s", type(exc).__name__)
    return error_response(503, detail, None, {"Retry-After": str(retry_after)})


async def config_error_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConfigError)
    return error_response(exc.status, exc.message, exc.field)


async def access_error_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AccessValidationError)
    return error_response(422, exc.message, exc.field)


def _field_path(loc: tuple[int | str, ...]) -> str:
    parts = [p for p in loc if p not in ("body", "query", "path")]
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    """Request-shape errors under /api/v1 name the first offending field; elsewhere FastAPI's."""
    assert isinstance(exc, RequestValidationError)
    if not request.url.path.startswith(API_PREFIX):
        return await request_validation_exception_handler(request, exc)
    errors = exc.errors()
    if not errors:
        return error_response(422, "invalid request", None)
    first = errors[0]
    field = _field_path(tuple(first.get("loc", ())))
    return error_response(422, str(first.get("msg", "invalid")), field or None)
