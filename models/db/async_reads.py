"""PostgreSQL reads on the event loop: prebuilt statements over pooled psycopg asyncio
connections.

Most requests run their transaction in a worker thread through SQLAlchemy
(`scim.offload`). The reads an IdP sends before nearly every write (its token check and
a lookup by an indexed key) are one prebuilt statement each, and for them the thread
hand-off plus SQLAlchemy's session, connection and result machinery cost several times
the index probe they wrap (measured: docs/benchmarks.md). Here such a statement,
compiled once by SQLAlchemy for psycopg, runs as a server-side prepared statement on an
autocommit asyncio connection: one round trip, nothing else.

The pool is deliberately small and plain, with the sync engine's policies
(`models.db.session`): a connection is created when none is idle (failing fast with
psycopg's OperationalError when PostgreSQL is down, so the request gets its 503 at
once instead of waiting for a background reconnect), one idle for PING_AFTER_IDLE_S is
pinged before use, and a statement that fails on a connection the pool handed out is
retried once on a new connection (every statement here is a read). A pool belongs to
the event loop that opened it (the app's lifespan).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Select
from sqlalchemy.engine import Dialect, make_url

from models.db import session as session_settings

Row = tuple[Any, ...]


@dataclass(frozen=True)
class Prepared:
    """A statement compiled once for psycopg: its SQL and the bind names it takes."""

    sql: str
    binds: frozenset[str]


def prepare(statement: Select[Any], dialect: Dialect) -> Prepared:
    """Compile `statement` for psycopg (`%(name)s` placeholders).

    Values are passed to psycopg as they are, so every bind must be of a type that
    needs no bind processing (strings, integers); a statement that binds anything else
    is refused here, when it is built, not when a request runs it."""
    if dialect.name != "postgresql" or dialect.driver != "psycopg":
        raise ValueError(f"async reads need PostgreSQL through psycopg, not {dialect.name}")
    compiled = statement.compile(dialect=dialect)
    for name, bind in compiled.binds.items():
        if bind.type.bind_processor(dialect) is not None or bind.expanding:
            raise TypeError(f"bind {name!r} ({bind.type!r}) needs processing: not an async read")
    return Prepared(str(compiled), frozenset(compiled.binds))


def conninfo(url: str) -> str:
    """A libpq connection URL for a SQLAlchemy PostgreSQL URL (any driver suffix)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError("async reads need PostgreSQL")
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


class AsyncReads:
    """A pool of psycopg asyncio connections for prebuilt read statements.

    `open()` binds it to the running event loop (the app's lifespan does this);
    `fetch` from another loop, or before `open`/after `close`, raises RuntimeError.
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
        """Whether `fetch` may run here (opened, on this event loop)."""
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
            raise RuntimeError("AsyncReads is not open on this event loop")
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
        """All rows of `statement` with `params` (exactly its binds), one round trip.

        Raises psycopg.OperationalError when PostgreSQL cannot be reached."""
        if params.keys() != statement.binds:
            raise ValueError(f"binds {sorted(statement.binds)} expected, got {sorted(params)}")
        pooled = False
        try:
            async with self._connection() as (conn, pooled):
                cursor = await conn.execute(statement.sql, params, prepare=True)
                return await cursor.fetchall()
        except psycopg.OperationalError:
            if not pooled:
                raise
        # A pooled connection died under us (server restart, failover, an idle-killing
        # proxy): the others of its age are likely dead too, so retry once on a new one.
        await self._drop_idle()
        async with self._connection() as (conn, _):
            cursor = await conn.execute(statement.sql, params, prepare=True)
            return await cursor.fetchall()

    async def _drop_idle(self) -> None:
        idle, self._idle = self._idle, []
        for conn, _ in idle:
            await conn.close()  # libpq's PQfinish: no round trip to wait for
