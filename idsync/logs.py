"""Layer: app (process setup). Structured logs: one JSON object per line on stderr, with
secrets masked (``models.redaction``).

Every line has `ts` (UTC, ISO 8601), `level`, `logger`, `msg` and `request_id` (from
`request_id_var`, set per HTTP request or task), plus the record's `extra={...}`
fields and `exc` when an exception is attached.

Redaction: extra fields whose key looks like a credential (authorization, cookie,
token, password, secret, api key, …), at any depth of dicts and lists, are replaced
by "[REDACTED]", and `Bearer …`/`Basic …` credentials are masked inside the message.
Never log a raw request header mapping without this filter in place.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from models.redaction import REDACTED, SECRET_KEY, redact, redact_text

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "idsync_request_id", default=None
)

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


def get_request_id() -> str | None:
    """The request id of the current context (None outside a request or task)."""
    return request_id_var.get()


def set_request_id(request_id: str | None) -> contextvars.Token[str | None]:
    """Set the current request id; pass the returned token to `reset_request_id`."""
    return request_id_var.set(request_id)


def reset_request_id(token: contextvars.Token[str | None]) -> None:
    request_id_var.reset(token)


@contextmanager
def bind_request_id(request_id: str | None) -> Iterator[None]:
    """`with bind_request_id(rid): ...`: the id is on every log line inside the block."""
    token = request_id_var.set(request_id)
    try:
        yield
    finally:
        request_id_var.reset(token)


@functools.lru_cache(maxsize=1024)
def _names_a_secret(key: str) -> bool:
    """Whether an extra field's name looks like a credential's (names are few: kept)."""
    return SECRET_KEY.search(key) is not None


class RedactingFilter(logging.Filter):
    """Masks credentials in a record's extra fields and message, in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key in record.__dict__.keys() - _STANDARD_ATTRS:  # the extra fields only
            value = record.__dict__[key]
            record.__dict__[key] = REDACTED if _names_a_secret(key) else redact(value)
        if record.args:
            try:
                record.msg = record.getMessage()
            except (TypeError, ValueError):  # bad format args: the handler reports them
                return True
            record.args = None
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        return True


_ORJSON = orjson.OPT_NON_STR_KEYS


def _json_default(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, no newlines inside."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": request_id_var.get() or getattr(record, "request_id", None),
        }
        fields = record.__dict__
        for key in fields.keys() - _STANDARD_ATTRS:
            if key not in doc:
                doc[key] = fields[key]
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        try:  # orjson: a fifth of the stdlib's cost on the per-request line
            return orjson.dumps(doc, default=_json_default, option=_ORJSON).decode()
        except TypeError:  # what orjson refuses (an int past 64 bits, say)
            return json.dumps(doc, default=_json_default, ensure_ascii=False)


def configure_logging(level: str = "INFO", *, stream: TextIO | None = None) -> None:
    """Send every log record (root logger) as JSON lines to stderr; replaces handlers.

    Idempotent. Library loggers that install their own handlers (uvicorn, celery) are
    reset to propagate here: run uvicorn with `log_config=None` and Celery with
    `worker_hijack_root_logger=False`.
    """
    # Nothing in a JSON line needs the caller's file and line, thread or process name:
    # don't collect them for every record (the Logging HOWTO's "Optimization" switches;
    # together with the rest, ~100 us per SCIM request was the access log line).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery", "alembic"):
        lib = logging.getLogger(name)
        for old in list(lib.handlers):
            lib.removeHandler(old)
        lib.propagate = True
    # Per-request access lines come from idsync.http (with request_id); uvicorn's
    # own access log would repeat them without it.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # setup chatter
