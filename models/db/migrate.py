"""Layer: store. Schema migrations (Alembic) driven from code: no alembic.ini is needed at runtime.

- `upgrade(url)` brings a database to the newest revision. It is idempotent and safe
  to run from several processes at once (a PostgreSQL advisory lock, or SQLite's
  write lock, serializes them).
- `current(url)` is the revision a database is at (None: never migrated).
- `check(url)` lists differences between a migrated database and the table metadata
  in `models.db.metadata`; empty means the migrations describe the models exactly.
  A test runs it, so a table or column added without a migration fails the build.
"""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.autogenerate.api import AutogenContext
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, Index, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from sqlalchemy.schema import Column, Constraint, Table
from sqlalchemy.types import TypeDecorator

from models.db.metadata import metadata
from models.db.session import normalize_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version"
# pg_advisory_lock key shared by every process that migrates (arbitrary, fixed).
_PG_LOCK_KEY = 0x1D5_C0DE_0001
_PROCESS_LOCK = threading.RLock()


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
    """Autogenerate hook: render our TypeDecorators as their SQLAlchemy implementation.

    Migrations must not import application code: `UTCDateTime` is rendered as
    `sa.DateTime(timezone=True)`, which is exactly what it stores.
    """
    if type_ == "type" and isinstance(obj, TypeDecorator):
        impl = obj.impl_instance
        if type(impl).__module__.startswith("sqlalchemy."):
            return f"sa.{impl!r}"
    return False


def configure_options() -> dict[str, Any]:
    """MigrationContext options shared by env.py (migrations, autogenerate) and `check`."""
    return {
        "target_metadata": metadata,
        # Batch operations always: every revision must also run on SQLite.
        "render_as_batch": True,
        "compare_type": True,
        "render_item": render_item,
    }


def alembic_config(**attributes: Any) -> Config:
    """An Alembic Config for our migrations directory, built in code."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes.update(attributes)
    return cfg


def migration_engine(url: str) -> Engine:
    """A single-connection engine for migrating `url`.

    SQLite: foreign keys OFF while migrating (batch operations recreate tables, and a
    DROP TABLE with foreign keys ON would cascade-delete child rows); `upgrade` runs
    PRAGMA foreign_key_check afterwards instead. BEGIN IMMEDIATE takes the write lock
    up front, so concurrent migrators queue instead of failing.
    """
    real = normalize_url(url)
    parsed = make_url(real)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(real, poolclass=NullPool)
    database = parsed.database or ""
    if database not in ("", ":memory:") and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(real, poolclass=NullPool, connect_args={"timeout": 60})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=OFF")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


@contextmanager
def _connect(url: str) -> Iterator[Connection]:
    engine = migration_engine(url)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


@contextmanager
def _serialized(url: str) -> Iterator[None]:
    """Hold the migration lock for `url` (wraps connecting, so PRAGMAs are serialized too).

    Alembic keeps its running context in module globals, so migrations in one process
    never overlap (a thread lock). Across processes: a lock file next to a SQLite
    database; on PostgreSQL, `_pg_lock` on the connection.
    """
    with _PROCESS_LOCK:
        parsed = make_url(normalize_url(url))
        database = parsed.database or ""
        if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
            yield
            return
        lock_path = Path(database.removeprefix("file:").split("?")[0] + ".migrate-lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _pg_lock(conn: Connection) -> Iterator[None]:
    """A session advisory lock: one migrator at a time across every host."""
    if conn.dialect.name != "postgresql":
        yield
        return
    conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
    conn.commit()
    try:
        yield
    finally:
        conn.rollback()
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
        conn.commit()


def _refuse_unversioned(conn: Connection) -> None:
    """Refuse to migrate a database whose tables were made without migrations."""
    names = set(inspect(conn).get_table_names())
    if VERSION_TABLE in names:
        return
    ours = sorted(names & set(metadata.tables))
    if ours:
        raise RuntimeError(
            "database has idsync tables but no migration history "
            f"({', '.join(ours)}; created by metadata.create_all?). If its schema matches "
            "a revision, record that with models.db.migrate.stamp(url, revision)."
        )


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` to `revision` (default: newest). Idempotent."""
    with _serialized(url), _connect(url) as conn, _pg_lock(conn):
        _refuse_unversioned(conn)
        conn.commit()
        command.upgrade(alembic_config(connection=conn), revision)
        conn.commit()
        if conn.dialect.name == "sqlite":
            broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"foreign key violations after migrating: {broken[:10]}")


def stamp(url: str, revision: str) -> None:
    """Record that the database at `url` is at `revision` without running migrations."""
    with _serialized(url), _connect(url) as conn, _pg_lock(conn):
        command.stamp(alembic_config(connection=conn), revision)
        conn.commit()


def current(url: str) -> str | None:
    """The revision the database at `url` is at; None if it was never migrated."""
    with _connect(url) as conn:
        return MigrationContext.configure(conn).get_current_revision()


class SchemaNotReady(Exception):
    """The database at a URL is missing, has no idsync schema, or an older one."""


def require_current(url: str) -> None:
    """Raise ``SchemaNotReady`` unless the database at ``url`` is migrated to the newest
    revision. A SQLite file that does not exist is not created."""
    parsed = make_url(normalize_url(url))
    database = parsed.database or ""
    if parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:"):
        path = Path(database.removeprefix("file:").split("?")[0])
        if not path.exists():
            raise SchemaNotReady(f"no idsync database at {path}")
    with _connect(url) as conn:  # not MigrationContext: it logs at INFO
        if VERSION_TABLE in inspect(conn).get_table_names():
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        else:
            revision = None
    newest = heads()
    if revision is None:
        raise SchemaNotReady("the database has no idsync schema")
    if revision not in newest:
        raise SchemaNotReady(f"the database schema is at {revision}, not {', '.join(newest)}")


def heads() -> list[str]:
    """The newest revision(s) of the migrations directory (more than one: branches)."""
    return list(ScriptDirectory.from_config(alembic_config()).get_heads())


def _name(obj: Any) -> str:
    if isinstance(obj, str):
        return obj
    if isinstance(obj, Table):
        return f"table {obj.name}"
    if isinstance(obj, Column):
        table = getattr(obj, "table", None)
        return f"column {table.name}.{obj.name}" if table is not None else f"column {obj.name}"
    if isinstance(obj, Index | Constraint):
        table = getattr(obj, "table", None)
        where = f" on {table.name}" if isinstance(table, Table) else ""
        return f"{type(obj).__name__} {obj.name}{where}"
    return repr(obj)


def _describe(diff: Any) -> str:
    """One readable line for an autogenerate diff (a tuple, or a list of tuples)."""
    if isinstance(diff, list):
        return "; ".join(_describe(d) for d in diff)
    op, *rest = diff
    return f"{op}: " + ", ".join(_name(x) for x in rest if x is not None)


def check(url: str) -> list[str]:
    """Differences between the migrated database at `url` and `models.db.metadata`.

    Run it on a database just upgraded to head: an empty list means the migrations
    create exactly what the models declare. Anything else (a table, column, index or
    type the models have and no migration creates, a database not at head, several
    heads) is one line each.
    """
    problems: list[str] = []
    head_revisions = heads()
    if len(head_revisions) > 1:
        problems.append(f"multiple migration heads (merge them): {sorted(head_revisions)}")
    with _connect(url) as conn:
        ctx = MigrationContext.configure(conn, opts=configure_options())
        at = set(ctx.get_current_heads())
        if at != set(head_revisions):
            problems.append(f"database is at {sorted(at)}, migrations head is {head_revisions}")
        problems.extend(_describe(d) for d in compare_metadata(ctx, metadata))
    return problems
