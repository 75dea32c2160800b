"""Layer: app. The console's cookies: the session cookie and the sign-in form's
double-submit token, both HttpOnly, ``SameSite=Strict``, scoped to ``/console`` and
``Secure`` when the request came over HTTPS."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE = "idsync_console"
SIGNIN_COOKIE = "idsync_console_signin"
COOKIE_PATH = "/console"


def is_https(request: Request, public_url: str | None) -> bool:
    """HTTPS as the browser sees it: the request's scheme (uvicorn's --proxy-headers sets it
    from a trusted proxy), a proxy's ``X-Forwarded-Proto: https``, or an
    ``IDSYNC_PUBLIC_URL`` that is https. A forged header can only add ``Secure``, which
    costs the forger their own sign-in and nobody else anything."""
    if request.url.scheme == "https":
        return True
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    if forwarded == "https":
        return True
    return bool(public_url and public_url.lower().startswith("https://"))


def set_cookie(
    response: Response, request: Request, public_url: str | None, name: str, value: str
) -> None:
    """A session cookie (no Max-Age: the browser forgets it on exit; the server's expiry
    is what counts)."""
    response.set_cookie(
        name,
        value,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=is_https(request, public_url),
    )


def clear_cookie(response: Response, request: Request, public_url: str | None, name: str) -> None:
    response.delete_cookie(
        name,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=is_https(request, public_url),
    )
