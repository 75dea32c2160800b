"""The database handle: engine, sessions, and after-commit change publication."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Engine, Table, bindparam, insert, select, text, update
from sqlalchemy.orm import Session

from models.db.base import utcnow
from models.db.session import make_engine, make_session_factory
from models.db.tables import Change, Organization

_PENDING = "idsync.pending_changes"
_ORGS = cast(Table, Organization.__table__)
_CHANGES = cast(Table, Change.__table__)
_CHANGE_COLUMNS = (
    "org_id",
    "kind",
    "resource_type",
    "resource_id",
    "user_ids",
    "group_ids",
    "actor",
    "request_id",
    "summary",
    "created_at",
)
# Built once (Core, bound parameters): the hot write path only binds values.
_BUMP = (
    update(_ORGS)
    .where(_ORGS.c.id == bindparam("org_id"))
    .values(revision=_ORGS.c.revision + 1)
    .returning(_ORGS.c.revision)
)
_ALLOCATED = _BUMP.cte("allocated")
_RECORD_PG = (
    insert(_CHANGES)
    .from_select(
        [*_CHANGE_COLUMNS, "revision"],
        select(
            *(bindparam(f"v_{name}", type_=_CHANGES.c[name].type) for name in _CHANGE_COLUMNS),
            _ALLOCATED.c.revision,
        ),
    )
    .returning(_CHANGES.c.revision)
)


@dataclass(frozen=True)
class CommittedChange:
    """What listeners learn after a write commits (never before)."""

    org_id: str
    revision: int
    kind: str
    user_ids: tuple[str, ...]
    group_ids: tuple[str, ...]


ChangeListener = Callable[[list[CommittedChange]], None]


class Database:
    """Owns the engine and session factory; publishes committed changes to listeners."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = url
        self.engine: Engine = make_engine(url, pool_size=pool_size, echo=echo)
        self.sessions = make_session_factory(self.engine)
        # SQLite file databases get a second engine for reads (deferred BEGIN, WAL
        # readers never wait for the writer); elsewhere reads share the one engine.
        self.read_engine: Engine = self.engine
        if self.engine.dialect.name == "sqlite" and self.engine.url.database not in (
            None,
            "",
            ":memory:",
        ):
            self.read_engine = make_engine(url, echo=echo, sqlite_writer=False)
        self.read_sessions = make_session_factory(self.read_engine)
        self._listeners: list[ChangeListener] = []

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def add_listener(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: ChangeListener) -> None:
        self._listeners.remove(listener)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading (it must not write: on SQLite it holds no write lock)."""
        with self.read_sessions() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction: commit on success, roll back on error; then publish changes."""
        with self.sessions() as session:
            with session.begin():
                yield session
            pending: list[CommittedChange] = session.info.pop(_PENDING, [])
        if pending:
            for listener in list(self._listeners):
                listener(pending)

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    def dispose(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()


def record_change(
    session: Session,
    *,
    org_id: str,
    kind: str,
    resource_type: str,
    resource_id: str | None,
    actor: str,
    user_ids: list[str] | tuple[str, ...] = (),
    group_ids: list[str] | tuple[str, ...] = (),
    request_id: str | None = None,
    summary: str = "",
) -> int:
    """Allocate the organization's next revision and write the change row.

    Call it as the last statement of a write transaction: the `UPDATE … RETURNING`
    takes the organization row lock until commit, so revisions commit in order.
    """
    users = sorted(set(user_ids))
    groups = sorted(set(group_ids))
    # Everything else the transaction writes goes to the database first, so that the
    # organization row lock below is held for one statement and the COMMIT only.
    session.flush()
    values = {
        "org_id": org_id,
        "kind": kind,
        "resource_type": resource_type,
        "resource_id": resource_id,
        "user_ids": users,
        "group_ids": groups,
        "actor": actor,
        "request_id": request_id,
        "summary": summary,
        "created_at": utcnow(),
    }
    if session.get_bind().dialect.name == "postgresql":
        # One round trip: WITH r AS (UPDATE … RETURNING revision) INSERT … SELECT … FROM r.
        params = {"org_id": org_id, **{f"v_{name}": value for name, value in values.items()}}
        revision = session.execute(_RECORD_PG, params).scalar_one()
    else:  # SQLite: the write lock was taken at BEGIN IMMEDIATE; two statements suffice.
        revision = session.execute(_BUMP, {"org_id": org_id}).scalar_one()
        session.execute(insert(_CHANGES), {**values, "revision": revision})
    session.info.setdefault(_PENDING, []).append(
        CommittedChange(org_id, revision, kind, tuple(users), tuple(groups))
    )
    return int(revision)
