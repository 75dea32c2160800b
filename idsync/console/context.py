"""Layer: app. What every console page needs: the database, the settings, the session
store, the templates, and the one gate every page goes through (``console_page``: the
session, the key it was opened with still in force, and for every write the CSRF token).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from idsync.console.cookies import SESSION_COOKIE, clear_cookie
from idsync.console.forms import read_form
from idsync.console.sessions import ConsoleSession, SessionStore, same_secret
from models.cache.connection import CacheRedis, cache_redis
from models.db.admin_keys import AdminIdentity, admin_key_in_force
from models.db.database import Database
from models.settings import Settings
from scim.totals import Totals

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD"})
REDIS_TIMEOUT_S = 2.0
UNAVAILABLE = (redis.RedisError, OperationalError, PoolTimeout)


@dataclass
class Console:
    """The console's shared state (one per app). The Redis client is made on first use
    (a Redis Cluster's client connects when made: an unreachable cluster must not stop
    the app from starting, only the console from answering, 503)."""

    db: Database
    settings: Settings
    templates: Jinja2Templates
    totals: Totals = field(default_factory=Totals)
    """The people search's totalResults per organization revision (``scim.totals``: a
    page of a search already counted skips its COUNT while nothing was written)."""
    _cache: CacheRedis | None = field(default=None, init=False)
    _sessions: SessionStore | None = field(default=None, init=False)

    @property
    def cache(self) -> CacheRedis | None:
        """The permission cache's Redis (sessions; sync status reads its lag and backlog);
        None when none is configured."""
        url = self.settings.resolved_cache_redis_url()
        if self._cache is None and url is not None:
            self._cache = cache_redis(
                url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
            )
        return self._cache

    @property
    def sessions(self) -> SessionStore | None:
        """None when no Redis is configured: nobody can sign in (the page says so)."""
        cache = self.cache
        if self._sessions is None and cache is not None:
            self._sessions = SessionStore(
                cache,
                idle_s=self.settings.console_idle_s,
                max_age_s=self.settings.console_max_age_s,
            )
        return self._sessions

    def render(
        self,
        request: Request,
        template: str,
        status_code: int = 200,
        **context: Any,
    ) -> Response:
        return self.templates.TemplateResponse(
            request,
            template,
            {"base": base_path(request), **context},
            status_code=status_code,
        )


def base_path(request: Request) -> str:
    """``/console`` as this request reached it (behind a proxy's root path too)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def wants_fragment(request: Request) -> bool:
    """An htmx request for a page's panel only; a history restore (back button with the
    page not cached) wants the whole page."""
    return (
        request.headers.get("hx-request") == "true"
        and request.headers.get("hx-history-restore-request") != "true"
    )


def identity_of(session: ConsoleSession) -> AdminIdentity:
    """The admin identity a session speaks for: the admin API's route functions take it."""
    return AdminIdentity(session.key_id, session.org_id, session.org_name)


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


class SignInRequired(Exception):
    """No live session: a page redirects to the sign-in form, a write is refused."""


def _live_session(console: Console, session_id: str) -> ConsoleSession | None:
    if console.sessions is None:
        return None
    session = console.sessions.find(session_id)
    if session is None:
        return None
    with console.db.read() as s:
        if not admin_key_in_force(s, session.key_id, session.org_id):
            console.sessions.close(session.session_id)  # the key was revoked
            return None
    return session


async def check_csrf(request: Request, expected: str, form: dict[str, str] | None) -> None:
    """A write carries the token as the form field or the ``X-CSRF-Token`` header."""
    presented = request.headers.get(CSRF_HEADER) or (form or {}).get(CSRF_FIELD)
    if not same_secret(presented, expected):
        raise HTTPException(403, "this form is stale or did not come from the console: reload")


Handler = Callable[[Request, Console, ConsoleSession], Awaitable[Response]]


def console_page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """The gate: a live session (else a redirect to sign-in, or 403 for a write), and a
    valid CSRF token on every method but GET and HEAD, checked before the handler runs."""

    async def endpoint(request: Request) -> Response:
        console = console_of(request)
        session_id = request.cookies.get(SESSION_COOKIE, "")
        session = await run_in_threadpool(_live_session, console, session_id)
        if session is None:
            if request.method in SAFE_METHODS:
                target = request.url.path
                if request.url.query:
                    target += "?" + request.url.query
                response: Response = RedirectResponse(
                    f"{base_path(request)}/signin?next={quote(target, safe='')}", 303
                )
            else:
                response = console.render(
                    request, "error.html", 403, title="Signed out", message="Sign in again."
                )
            if session_id:
                clear_cookie(response, request, console.settings.public_base_url, SESSION_COOKIE)
            return response
        if request.method not in SAFE_METHODS:
            await check_csrf(request, session.csrf_token, await request_form(request))
        request.state.console_session = session
        return await handler(request, console, session)

    return endpoint


async def request_form(request: Request) -> dict[str, str]:
    """The form of a write, read once (a handler asks again and gets the same dict)."""
    cached: dict[str, str] | None = getattr(request.state, "console_form", None)
    if cached is None:
        cached = await read_form(request)
        request.state.console_form = cached
    return cached
