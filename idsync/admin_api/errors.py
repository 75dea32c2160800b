"""Admin API errors: JSON ``{"detail": ..., "field": ...}`` with a 4xx status."""

from __future__ import annotations

from fastapi import Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from models.access.errors import ValidationError as AccessValidationError
from models.db.config_errors import ConfigError

API_PREFIX = "/api/v1"


def error_response(status: int, detail: str, field: str | None) -> JSONResponse:
    return JSONResponse({"detail": detail, "field": field}, status_code=status)


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
