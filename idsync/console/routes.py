"""Layer: app. The console as an ASGI sub-app mounted at ``/console``: its routes, its
static files, its error pages (HTML, not the API's JSON) and its security headers."""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from idsync.console.context import (
    STATIC,
    TEMPLATES,
    UNAVAILABLE,
    Console,
    console_of,
    console_page,
)
from idsync.console.errors import ConsoleErrors
from idsync.console.explorer import explorer
from idsync.console.headers import ConsoleHeaders
from idsync.console.overview import overview
from idsync.console.people import people, person
from idsync.console.signin import signin, signin_form, signout
from models.db.database import Database
from models.settings import Settings

log = logging.getLogger("idsync.console")


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return console_of(request).render(
        request,
        "error.html",
        exc.status_code,
        title=f"Error {exc.status_code}",
        message=exc.detail,
    )


async def unavailable(request: Request, exc: Exception) -> Response:
    log.warning("console: a backend is unavailable: %s", type(exc).__name__)
    response = console_of(request).render(
        request,
        "error.html",
        503,
        title="Unavailable",
        message="The database or Redis did not answer: try again in a moment.",
    )
    response.headers["retry-after"] = "5"
    return response


def create_console(settings: Settings, db: Database) -> Starlette:
    templates = Jinja2Templates(directory=TEMPLATES)
    routes = [
        Route("/", console_page(overview), methods=["GET"], name="overview"),
        Route("/signin", signin_form, methods=["GET"], name="signin_form"),
        Route("/signin", signin, methods=["POST"], name="signin"),
        Route("/signout", console_page(signout), methods=["POST"], name="signout"),
        Route("/people", console_page(people), methods=["GET"], name="people"),
        Route("/people/{user_id}", console_page(person), methods=["GET"], name="person"),
        Route("/explorer", console_page(explorer), methods=["GET"], name="explorer"),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    handlers: dict[type[Exception], object] = {HTTPException: http_error}
    for kind in UNAVAILABLE:
        handlers[kind] = unavailable
    console_app = Starlette(
        routes=routes,
        middleware=[Middleware(ConsoleHeaders), Middleware(ConsoleErrors)],
        exception_handlers=handlers,  # type: ignore[arg-type]
    )
    console_app.router.redirect_slashes = False  # as the API: a trailing slash is another path
    console_app.state.console = Console(db, settings, templates)
    return console_app
