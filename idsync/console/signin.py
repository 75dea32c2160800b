"""Layer: app. Sign-in (an organization admin key exchanged for a session) and sign-out.

The sign-in form has no session to tie a CSRF token to, so it carries a double-submit
token: a random value in an HttpOnly ``SameSite=Strict`` cookie and in the form, compared
in constant time; another site can neither read the cookie nor make the browser send it.
The key itself is checked like the admin API's bearer key
(``models.db.admin_keys.verify_admin_key``: hashed, constant time) and never logged nor
put in a page.
"""

from __future__ import annotations

import secrets

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from idsync.console.context import Console, base_path, console_of, request_form
from idsync.console.cookies import SESSION_COOKIE, SIGNIN_COOKIE, clear_cookie, set_cookie
from idsync.console.sessions import ConsoleSession, same_secret
from models.db.admin_keys import AdminIdentity, touch_admin_key, verify_admin_key


def safe_next(request: Request, value: str | None) -> str:
    """Where to go after sign-in: a console path only (never another site)."""
    base = base_path(request)
    if value and value.startswith(base + "/") and not value.startswith("//"):
        return value
    return base + "/"


def _form(
    console: Console,
    request: Request,
    next_path: str | None,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    token = secrets.token_urlsafe(32)
    response = console.render(
        request,
        "signin.html",
        status_code,
        title="Sign in",
        signin_token=token,
        next_path=safe_next(request, next_path),
        error=error,
        redis_missing=console.sessions is None,
    )
    set_cookie(response, request, console.settings.public_base_url, SIGNIN_COOKIE, token)
    return response


async def signin_form(request: Request) -> Response:
    return _form(console_of(request), request, request.query_params.get("next"))


def _verified(console: Console, presented: str) -> AdminIdentity | None:
    with console.db.read() as s:
        identity = verify_admin_key(s, presented)
    if identity is not None and identity.use_is_stale():
        with console.db.write() as s:
            touch_admin_key(s, identity.key_id)
    return identity


def _open(console: Console, identity: AdminIdentity) -> ConsoleSession:
    assert console.sessions is not None
    return console.sessions.open(identity.org_id, identity.org_name, identity.key_id)


async def signin(request: Request) -> Response:
    console = console_of(request)
    form = await request_form(request)
    if not same_secret(form.get("signin_token"), request.cookies.get(SIGNIN_COOKIE, "")):
        return _form(
            console,
            request,
            form.get("next"),
            error="The sign-in form expired or did not come from this console: try again.",
            status_code=403,
        )
    if console.sessions is None:
        return _form(
            console, request, form.get("next"), error="No Redis is configured.", status_code=503
        )
    identity = await run_in_threadpool(_verified, console, form.get("admin_key", "").strip())
    if identity is None:
        return _form(
            console,
            request,
            form.get("next"),
            error="Unknown or revoked admin key.",
            status_code=401,
        )
    session = await run_in_threadpool(_open, console, identity)
    previous = request.cookies.get(SESSION_COOKIE)
    if previous:
        await run_in_threadpool(console.sessions.close, previous)
    response = RedirectResponse(safe_next(request, form.get("next")), 303)
    public = console.settings.public_base_url
    set_cookie(response, request, public, SESSION_COOKIE, session.session_id)
    clear_cookie(response, request, public, SIGNIN_COOKIE)
    return response


async def signout(request: Request, console: Console, session: ConsoleSession) -> Response:
    """Behind the gate: only a write with the session's CSRF token signs out."""
    assert console.sessions is not None
    await run_in_threadpool(console.sessions.close, session.session_id)
    response = RedirectResponse(f"{base_path(request)}/signin", 303)
    clear_cookie(response, request, console.settings.public_base_url, SESSION_COOKIE)
    return response
