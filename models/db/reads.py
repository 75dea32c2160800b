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

from sqlalchemy import Connection

from models.db.database import Database


@contextmanager
def reading(db: Database) -> Iterator[Connection]:
    """A connection for Core reads. PostgreSQL: autocommit (under READ COMMITTED every
    statement takes its own snapshot anyway, so a read transaction buys only a BEGIN and
    a ROLLBACK round trip), from the pool opened that way (`Database.autocommit_engine`).
    SQLite: the reader engine's deferred transaction, one snapshot for every statement,
    rolled back at the end (`Database.read_engine`)."""
    with (db.autocommit_engine or db.read_engine).connect() as conn:
        yield conn
