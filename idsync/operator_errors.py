"""Layer: app. Operator mistakes as one line each (used by the CLI and the health probe).

A bad setting, an unreachable PostgreSQL or Redis, an unsupported ``DATABASE_URL`` or a
database without its schema is something an operator fixes by changing one thing; the
message names that thing (the variable, or the URL with its password masked) and says
what went wrong, with no traceback.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import redis
from pydantic import ValidationError
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from models.db.migrate import SchemaNotReady
from models.secret_box import SecretKeyError

MASK = "***"


def mask_url(url: str) -> str:
    """``scheme://user:***@host:port/path`` (no password shown; other parts kept)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:{MASK}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def settings_error(exc: ValidationError) -> str:
    """``IDSYNC_SCIM_MAX_RESULTS: Input should be a valid integer (got 'abc')``."""
    problems = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error.get("loc", ())) or "configuration"
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        got = error.get("input")
        if isinstance(got, str) and "://" in got:
            got = mask_url(got)
        secret = any(word in name.upper() for word in ("TOKEN", "SECRET", "PASSWORD"))
        shown = f" (got {got!r})" if isinstance(got, str | int | float) and not secret else ""
        problems.append(f"{name}: {message}{shown}")
    return "; ".join(problems)


def describe(exc: BaseException, *, database_url: str, redis_url: str | None) -> str | None:
    """One line for an operator mistake, or None when ``exc`` is a bug (keep its
    traceback)."""
    if isinstance(exc, SecretKeyError):
        return str(exc)  # names the variable; never the key or a secret
    if isinstance(exc, SchemaNotReady):
        return f"{exc}: run `idsync db upgrade` (database {mask_url(database_url)})"
    if isinstance(exc, ValidationError):
        return settings_error(exc)
    if isinstance(exc, NoSuchModuleError | ArgumentError):
        return f"DATABASE_URL: unsupported or malformed URL {mask_url(database_url)}: {exc}"
    if isinstance(exc, OperationalError):
        reason = _first_line(str(exc.orig) if exc.orig is not None else str(exc))
        backend = "SQLite" if database_url.startswith("sqlite") else "PostgreSQL"
        return f"cannot use {backend} at {mask_url(database_url)}: {reason}"
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        where = mask_url(redis_url) if redis_url else "the embedded Redis"
        return f"cannot reach Redis at {where}: {_first_line(str(exc))}"
    return None
