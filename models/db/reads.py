"""Layer: store. The connection a request's reads run on.

Reads are Core statements on a plain `Connection`, not an ORM `Session`: a read uses no
unit of work or identity map, and a Session's per-request setup (transaction object,
bind resolution, the ORM's execution path) costs more CPU than the indexed lookup it
runs (in process, the keyed lookup statement on PostgreSQL: 0.39-0.49 ms of CPU
through a Session, 0.27-0.34 ms on a Connection; docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from sqlalchemy import Connection, Engine

from models.db.database import Database


@cache  # one per engine, and a process has a few: building one per request costs ~30 us
def _autocommit(engine: Engine) -> Engine:
    """`engine` in autocommit (it shares the engine's pool)."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


@contextmanager
def reading(db: Database) -> Iterator[Connection]:
    """A connection for Core reads. PostgreSQL: autocommit (under READ COMMITTED every
    statement takes its own snapshot anyway, so a read transaction buys only a BEGIN and
    a ROLLBACK round trip). SQLite: the reader engine's deferred transaction, one
    snapshot for every statement, rolled back at the end (`Database.read_engine`)."""
    engine = _autocommit(db.engine) if db.dialect == "postgresql" else db.read_engine
    with engine.connect() as conn:
        yield conn
