"""Layer: app. The admin REST API under /api/v1 (organization admin API keys)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI
from fastapi.exceptions import RequestValidationError

from idsync.admin_api import (
    access_routes,
    config_routes,
    connection_routes,
    event_routes,
    observe_routes,
)
from idsync.admin_api.errors import (
    API_PREFIX,
    UNAVAILABLE,
    access_error_handler,
    config_error_handler,
    unavailable_handler,
    validation_error_handler,
)
from idsync.input_guard import storable_input
from models.access.errors import ValidationError as AccessValidationError
from models.db.config_errors import ConfigError


def install_admin_api(app: FastAPI) -> None:
    """Mount the admin routers and their JSON error handlers on ``app`` (the 503 ones
    serve the check API's routes too: exception handlers are the app's)."""
    api = APIRouter(prefix=API_PREFIX, dependencies=[Depends(storable_input)])
    api.include_router(config_routes.router)
    api.include_router(access_routes.router)
    api.include_router(observe_routes.router)
    api.include_router(connection_routes.router)
    api.include_router(event_routes.router)
    app.include_router(api)
    app.add_exception_handler(ConfigError, config_error_handler)
    app.add_exception_handler(AccessValidationError, access_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    for unavailable in UNAVAILABLE:
        app.add_exception_handler(unavailable, unavailable_handler)


__all__ = ["install_admin_api"]
