"""Layer: store. Engine and session factories. Nothing connects at import time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool


def normalize_url(url: str) -> str:
    """Map plain `postgresql://` URLs onto the psycopg 3 driver; leave others alone."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


CONNECT_TIMEOUT_S = 5
"""Seconds to establish a PostgreSQL connection (libpq ``connect_timeout``)."""


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    echo: bool = False,
    sqlite_writer: bool = True,
    autocommit: bool = False,
) -> Engine:
    """Create an engine for `url` (PostgreSQL via psycopg 3, or SQLite in WAL mode).

    SQLite: a writer engine begins every transaction with BEGIN IMMEDIATE (writers queue
    on busy_timeout instead of failing on lock upgrade); a reader engine
    (`sqlite_writer=False`) keeps deferred BEGIN, so reads run beside a writer (WAL).
    PostgreSQL with `autocommit`: every statement is its own transaction, on connections
    opened that way (a pool of their own: switching a pooled connection's isolation
    level at each checkout and back at each return cost more CPU than the statement).
    """
    real = normalize_url(url)
    parsed = make_url(real)
    if parsed.get_backend_name() == "sqlite":
        memory = parsed.database in (None, "", ":memory:")
        engine = create_engine(
            real,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 10},
            poolclass=StaticPool if memory else None,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # SQLite: take the write lock at BEGIN so that concurrent writers queue on
        # busy_timeout instead of failing with "database is locked" on lock upgrade.
        begin = "BEGIN IMMEDIATE" if sqlite_writer else "BEGIN"
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql(begin))

        @event.listens_for(engine, "connect")
        def _no_autobegin(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None

        return engine
    engine = create_engine(
        real,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        **({"isolation_level": "AUTOCOMMIT"} if autocommit else {}),
        # An unreachable server fails in seconds, not after the kernel's TCP timeout.
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
    )
    _ping_when_idle(engine)
    event.listen(engine, "connect", _postgresql_session_settings)
    return engine


def _postgresql_session_settings(dbapi_conn: Any, _record: Any) -> None:
    """`jit = off`: idsync's statements are short index probes and pages, and the JIT
    compilation PostgreSQL starts for any plan costed above `jit_above_cost` takes
    10-12 ms here, several times the query itself (docs/operations.md)."""
    autocommit = dbapi_conn.autocommit
    dbapi_conn.autocommit = True
    try:
        dbapi_conn.execute("SET jit = off")
    finally:
        dbapi_conn.autocommit = autocommit


PING_AFTER_IDLE_S = 5.0


def _ping_when_idle(engine: Engine) -> None:
    """Pessimistic disconnect handling without a round trip on every checkout.

    `pool_pre_ping` pings on every checkout: one extra round trip per request. A
    connection that was used less than PING_AFTER_IDLE_S ago is live for all practical
    purposes; one idle for longer (a PostgreSQL restart, a failover, an idle-killing
    proxy) is pinged first and, when dead, replaced transparently.
    """

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_conn: Any, record: Any) -> None:
        record.info["idsync.checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _maybe_ping(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get("idsync.checked_in")
        if returned is None or time.monotonic() - returned < PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise DisconnectionError("stale connection") from exc


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work commits on success and rolls back on any exception."""
    with factory() as session, session.begin():
        yield session
