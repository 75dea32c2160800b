"""Prebuilt statements on the event loop, over pooled psycopg asyncio connections.

Most requests run their transaction in a worker thread through SQLAlchemy
(`scim.offload`). The requests an IdP sends most (its token check, a lookup by an
indexed key, a user create) are one prebuilt statement each, and for them the thread
hand-off plus SQLAlchemy's session, connection and result machinery cost more than the
statement itself (measured: docs/benchmarks.md). Here such a statement, compiled once
by SQLAlchemy for psycopg (bind processors included), runs as a server-side prepared
statement on an autocommit asyncio connection: one round trip, nothing else.

The pool is deliberately small and plain, with the sync engine's policies
(`models.db.session`): a connection is created when none is idle (failing fast with
psycopg's OperationalError when PostgreSQL is down, so the request gets its 503 at
once instead of waiting for a background reconnect), and one idle for
PING_AFTER_IDLE_S is pinged before use. A read (`fetch`) that fails on a connection the
pool handed out is retried once on a new connection; a write (`write`) never is: it may
have committed before the connection died, as on the thread path. A pool belongs to
the event loop that opened it (the app's lifespan).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

import psycopg
from sqlalchemy import ClauseElement
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.sql.compiler import SQLCompiler

from models.db import session as session_settings

Row = tuple[Any, ...]
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@dataclass(frozen=True)
class Prepared:
    """A statement compiled once for psycopg: its SQL, the binds the caller supplies,
    the literal binds the statement carries itself, and how each value is processed
    for the driver (the bind processors SQLAlchemy itself would apply)."""

    sql: str
    binds: frozenset[str]
    defaults: Mapping[str, Any]
    processors: Mapping[str, Callable[[Any], Any]]

    def values(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """`params` (exactly `binds`) with the literal binds, processed for psycopg."""
        if params.keys() != self.binds:
            raise ValueError(f"binds {sorted(self.binds)} expected, got {sorted(params)}")
        out = {**self.defaults, **params}
        for name, process in self.processors.items():
            out[name] = process(out[name])
        return out


def prepare(statement: ClauseElement, dialect: Dialect) -> Prepared:
    """Compile `statement` for psycopg (`%(name)s` placeholders), once.

    Binds whose value the statement holds (a literal such as `revision + 1`) are kept as
    defaults; the rest the caller supplies to `fetch`/`write`. Expanding binds (`IN`
    lists) are refused here, when the statement is built, not when a request runs it."""
    if dialect.name != "postgresql" or dialect.driver != "psycopg":
        raise ValueError(f"async statements need PostgreSQL through psycopg, not {dialect.name}")
    compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
    sql = str(compiled)
    used = set(_PLACEHOLDER.findall(sql))
    processors: dict[str, Callable[[Any], Any]] = {}
    given: set[str] = set()
    literal: dict[str, Any] = {}
    for name, bind in compiled.binds.items():
        if bind.expanding or bind.literal_execute:  # rendered per execution, not a %(name)s
            raise TypeError(f"bind {name!r} expands (an IN list): not a prebuilt statement")
        if name not in used:
            continue
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors[name] = process
        if bind.value is None and bind.callable is None:
            given.add(name)
        else:
            literal[name] = bind.effective_value
    return Prepared(sql, frozenset(given), literal, processors)


async def _run(
    conn: psycopg.AsyncConnection[Row], statement: Prepared, values: Mapping[str, Any]
) -> Sequence[Row]:
    """One round trip: `statement` as a server-side prepared statement, all its rows."""
    cursor = await conn.execute(statement.sql, values, prepare=True)
    return await cursor.fetchall()


def conninfo(url: str) -> str:
    """A libpq connection URL for a SQLAlchemy PostgreSQL URL (any driver suffix)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError("async statements need PostgreSQL")
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


class AsyncPg:
    """A pool of psycopg asyncio connections for prebuilt statements.

    `open()` binds it to the running event loop (the app's lifespan does this);
    `fetch`/`write` from another loop, or before `open`/after `close`, raise RuntimeError.
    """

    def __init__(self, url: str, *, max_size: int = 10, connect_timeout_s: int = 5) -> None:
        if max_size < 1:
            raise ValueError("max_size must be >= 1")
        self._conninfo = conninfo(url)
        self.max_size = max_size
        self.connect_timeout_s = connect_timeout_s
        self._idle: list[tuple[psycopg.AsyncConnection[Row], float]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None

    # -- lifecycle -----------------------------------------------------------------

    def open(self) -> None:
        """Bind the pool to the running event loop (no connection is made yet)."""
        self._loop = asyncio.get_running_loop()
        self._slots = asyncio.Semaphore(self.max_size)

    def serves_this_loop(self) -> bool:
        """Whether `fetch` and `write` may run here (opened, on this event loop)."""
        try:
            return self._loop is not None and asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    async def close(self) -> None:
        """Close the idle connections; the pool serves nothing until opened again."""
        self._loop = None
        self._slots = None
        await self._drop_idle()

    # -- connections -----------------------------------------------------------------

    async def _connect(self) -> psycopg.AsyncConnection[Row]:
        conn = await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, connect_timeout=self.connect_timeout_s
        )
        # What the sync engine sets per connection (models.db.session), plus UTC so that
        # timestamptz values come back as UTC datetimes, as UTCDateTime returns them.
        await conn.execute("SET jit = off")
        await conn.execute("SET TimeZone = 'UTC'")
        return conn

    async def _checkout(self) -> tuple[psycopg.AsyncConnection[Row], bool]:
        """(connection, whether it came from the pool) — a fresh one when none is idle."""
        while self._idle:
            conn, returned = self._idle.pop()
            if conn.closed or conn.broken:
                continue
            if time.monotonic() - returned >= session_settings.PING_AFTER_IDLE_S:
                try:
                    await conn.execute("SELECT 1")
                except psycopg.Error:
                    await conn.close()
                    continue
            return conn, True
        return await self._connect(), False

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[tuple[psycopg.AsyncConnection[Row], bool]]:
        if self._slots is None or not self.serves_this_loop():
            raise RuntimeError("AsyncPg is not open on this event loop")
        async with self._slots:
            conn, pooled = await self._checkout()
            try:
                yield conn, pooled
            except BaseException:
                await conn.close()  # its state is unknown: never reuse it
                raise
            if conn.closed or conn.broken:
                return
            if self._loop is None:  # closed while this one was out
                await conn.close()
                return
            self._idle.append((conn, time.monotonic()))

    async def fetch(self, statement: Prepared, params: Mapping[str, Any]) -> Sequence[Row]:
        """All rows of a read statement with `params` (exactly its binds), one round trip.

        Raises psycopg.OperationalError when PostgreSQL cannot be reached."""
        values = statement.values(params)
        pooled = False
        try:
            async with self._connection() as (conn, pooled):
                return await _run(conn, statement, values)
        except psycopg.OperationalError:
            if not pooled:
                raise
        # A pooled connection died under us (server restart, failover, an idle-killing
        # proxy): the others of its age are likely dead too, so retry once on a new one.
        await self._drop_idle()
        async with self._connection() as (conn, _):
            return await _run(conn, statement, values)

    async def write(self, statement: Prepared, params: Mapping[str, Any]) -> Sequence[Row]:
        """Run one writing statement as its own transaction (autocommit) and return its
        RETURNING rows. Never retried: a connection lost mid-statement may have
        committed it. Database errors propagate (OperationalError: unreachable)."""
        async with self._connection() as (conn, _):
            return await _run(conn, statement, statement.values(params))

    async def _drop_idle(self) -> None:
        idle, self._idle = self._idle, []
        for conn, _ in idle:
            await conn.close()  # libpq's PQfinish: no round trip to wait for
