"""Layer: app. The web console for organization admins, served at ``/console``
(docs/console.md). Nothing imports it but the app that mounts it."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount

from idsync.console.routes import create_console
from models.db.database import Database
from models.settings import Settings

PREFIX = "/console"


def install_console(app: FastAPI, settings: Settings, db: Database) -> None:
    """Mount the console (its own routes, error pages and headers) and send a bare
    ``/console`` to its overview."""

    async def to_console(request: Request) -> Response:
        return RedirectResponse(f"{request.scope.get('root_path', '')}{PREFIX}/", 307)

    app.add_route(PREFIX, to_console, methods=["GET", "HEAD"], include_in_schema=False)
    app.router.routes.append(Mount(PREFIX, app=create_console(settings, db), name="console"))


__all__ = ["install_console"]
