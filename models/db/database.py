"""Layer: store. The database handle: engine, sessions, commit guards and after-commit change
publication."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    CTE,
    ColumnElement,
    Connection,
    Engine,
    Insert,
    Table,
    Update,
    bindparam,
    exists,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from models.db.base import utcnow
from models.db.session import make_engine, make_session_factory
from models.db.tables import Change, Organization
from models.tracing import span

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
    "revoked_user_ids",
    "actor",
    "request_id",
    "summary",
    "created_at",
)


def _bump(*conditions: ColumnElement[bool]) -> Update:
    """`UPDATE organizations SET revision = revision + 1 … RETURNING revision`."""
    return (
        update(_ORGS)
        .where(_ORGS.c.id == bindparam("org_id"), *conditions)
        .values(revision=_ORGS.c.revision + 1)
        .returning(_ORGS.c.revision)
    )


def _insert_change(allocated: CTE) -> Insert:
    """`INSERT INTO changes … SELECT :v_…, allocated.revision FROM allocated`."""
    return (
        insert(_CHANGES)
        .from_select(
            [*_CHANGE_COLUMNS, "revision"],
            select(
                *(bindparam(f"v_{name}", type_=_CHANGES.c[name].type) for name in _CHANGE_COLUMNS),
                allocated.c.revision,
            ),
        )
        .returning(_CHANGES.c.revision)
    )


# Built once (Core, bound parameters): the hot write path only binds values.
_BUMP = _bump()
_RECORD_PG = _insert_change(_BUMP.cte("allocated"))
_RECORD_WITH_INSERT_PG: dict[str, Insert] = {}


def _record_with_insert_pg(table: Table) -> Insert:
    """`_RECORD_PG` that first inserts one row into `table` (bound as `i_<column>`):

        WITH inserted AS (INSERT INTO table … RETURNING id),
             allocated AS (UPDATE organizations … WHERE id = :org_id
                           AND EXISTS (SELECT FROM inserted) RETURNING revision)
        INSERT INTO changes … SELECT …, allocated.revision FROM allocated

    The EXISTS is an uncorrelated subquery, which PostgreSQL evaluates once, before the
    UPDATE scans for the organization row: reading `inserted` there runs the row's
    INSERT (and its unique-index check) first, so the lock order is that of every other
    write (rows first, revision last) and this statement cannot deadlock with them.
    """
    built = _RECORD_WITH_INSERT_PG.get(table.name)
    if built is not None:
        return built
    inserted = (
        insert(table)
        .values({c.key: bindparam(f"i_{c.key}", type_=c.type) for c in table.columns})
        .returning(table.c[next(iter(table.primary_key.columns)).key])
        .cte("inserted")
    )
    built = _insert_change(_bump(exists().select_from(inserted)).cte("allocated"))
    _RECORD_WITH_INSERT_PG[table.name] = built
    return built


@dataclass(frozen=True)
class CommittedChange:
    """What listeners learn after a write commits (never before)."""

    org_id: str
    revision: int
    kind: str
    user_ids: tuple[str, ...]
    group_ids: tuple[str, ...]
    revoked_user_ids: tuple[str, ...] = ()
    """Users this change took out of a group (a subset of ``user_ids``; known to the
    writer only, not stored in the change row): the commit guard marks them pending."""


def change_attributes(changes: list[CommittedChange]) -> dict[str, str | int | list[str]]:
    """Span attributes of committed changes: the (newest) revision, the organization,
    the kinds; bounded (no user or group ids)."""
    out: dict[str, str | int | list[str]] = {
        "idsync.change.revision": max(c.revision for c in changes),
        "idsync.change.count": len(changes),
        "idsync.change.kinds": sorted({c.kind for c in changes}),
    }
    orgs = {c.org_id for c in changes}
    if len(orgs) == 1:
        out["idsync.org_id"] = orgs.pop()
    return out


ChangeListener = Callable[[list[CommittedChange]], None]
CommitGuard = Callable[[list[CommittedChange]], None]
"""Told a write's changes (revisions allocated) just before its COMMIT; raising rolls the
transaction back. `Database.add_commit_guard`."""


class CommitRefused(Exception):
    """A commit guard could not do what must happen before the commit (the permission
    cache did not take a revocation): the transaction was rolled back, nothing of the
    write is committed, and the caller may try again after `retry_after_s` seconds."""

    def __init__(self, detail: str, *, retry_after_s: int = 5) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after_s = retry_after_s


class Database:
    """Owns the engine and session factory; runs commit guards before a write commits and
    publishes committed changes to listeners after."""

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
        # PostgreSQL: a pool of autocommit connections for what runs one statement at a
        # time (`write_one`'s write, and the request reads of `models.db.reads`), every
        # statement its own transaction; as large as the main pool, which keeps the
        # transactions of `write`. SQLite: the writer engine (BEGIN IMMEDIATE).
        self._one_statement_engine: Engine = (
            make_engine(url, pool_size=pool_size, echo=echo, autocommit=True)
            if self.engine.dialect.name == "postgresql"
            else self.engine
        )
        self._listeners: list[ChangeListener] = []
        self._guards: list[CommitGuard] = []

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def autocommit_engine(self) -> Engine | None:
        """PostgreSQL: the pool of autocommit connections (None on SQLite)."""
        return None if self.dialect != "postgresql" else self._one_statement_engine

    @property
    def engines(self) -> tuple[Engine, ...]:
        """Every engine this database runs statements on (writes, reads, `write_one`)."""
        found = (self.engine, self.read_engine, self._one_statement_engine)
        return tuple(dict.fromkeys(found))

    def add_listener(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: ChangeListener) -> None:
        self._listeners.remove(listener)

    def add_commit_guard(self, guard: CommitGuard) -> None:
        """Run `guard` inside every write transaction that recorded changes, after its
        last statement and before its COMMIT (the organization row lock is held, so no
        other write of the organization commits in between). When it raises, the
        transaction rolls back and the exception reaches the caller: the write did not
        happen. (A `write_one` write on PostgreSQL has committed by then; such writes must
        not carry anything a guard has to refuse: they are creates.)"""
        self._guards.append(guard)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading (it must not write: on SQLite it holds no write lock)."""
        with self.read_sessions() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction: commit on success, roll back on error; then publish changes.

        The commit guards see the recorded changes first; one that raises (CommitRefused)
        rolls the transaction back.

        Traced (span ``idsync.db.write``, the commit included, the change revision as
        ``idsync.change.revision``) when the caller's span records (models.tracing);
        the listeners run after that span ends.
        """
        with span("idsync.db.write", {"db.system.name": self.dialect}) as traced:
            with self.sessions() as session:
                with session.begin():
                    yield session
                    self._guard(session.info.get(_PENDING, []))
                pending: list[CommittedChange] = session.info.pop(_PENDING, [])
            if pending:
                traced.set_attributes(change_attributes(pending))
        if pending:
            self.publish(pending)

    @contextmanager
    def write_one(self) -> Iterator[Connection]:
        """`write` for a caller that writes with exactly one statement (reads before it
        are fine), as Core on a plain Connection: no ORM Session, unit of work or flush
        (a User create: `record` with `insert_row`).

        On PostgreSQL that statement runs as its own transaction (autocommit): no BEGIN
        and no COMMIT round trip, and the locks it takes are released by the server as
        soon as it ends, not a round trip later; the commit guards then run after it has
        committed, so such a write must carry nothing a guard has to refuse (a create
        revokes nothing). SQLite: one BEGIN IMMEDIATE transaction, guarded before COMMIT
        as in `write`. The same span, guards and listeners as `write`; the listeners are
        told after the COMMIT only.
        """
        with span("idsync.db.write", {"db.system.name": self.dialect}) as traced:
            with self._one_statement_engine.begin() as conn:
                # `Connection.info` belongs to the pooled DBAPI connection: emptied
                # whatever happens, so nothing reaches the connection's next user. (An
                # invalidated connection, one the server dropped, has no `info` to read,
                # and `record` added nothing: its statement failed.)
                try:
                    yield conn
                    self._guard(conn.info.get(_PENDING, []))
                finally:
                    pending: list[CommittedChange] = (
                        [] if conn.invalidated else conn.info.pop(_PENDING, [])
                    )
            if pending:
                traced.set_attributes(change_attributes(pending))
        if pending:
            self.publish(pending)

    def _guard(self, recorded: list[CommittedChange]) -> None:
        if recorded and self._guards:
            for guard in list(self._guards):
                guard(list(recorded))

    @property
    def has_listeners(self) -> bool:
        return bool(self._listeners)

    def publish(self, committed: list[CommittedChange]) -> None:
        """Tell the listeners about changes that have committed (never before)."""
        for listener in list(self._listeners):
            listener(committed)

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    def dispose(self) -> None:
        for engine in self.engines:
            engine.dispose()


@dataclass(frozen=True)
class ChangeRow:
    """The values of one change row, before its revision is allocated."""

    org_id: str
    kind: str
    resource_type: str
    resource_id: str | None
    actor: str
    user_ids: tuple[str, ...]  # sorted, distinct
    group_ids: tuple[str, ...]
    request_id: str | None
    summary: str
    created_at: datetime
    revoked_user_ids: tuple[str, ...] = ()  # not a column: see CommittedChange

    @classmethod
    def of(
        cls,
        *,
        org_id: str,
        kind: str,
        resource_type: str,
        resource_id: str | None,
        actor: str,
        user_ids: Iterable[str] = (),
        group_ids: Iterable[str] = (),
        request_id: str | None = None,
        summary: str = "",
        revoked_user_ids: Iterable[str] = (),
    ) -> ChangeRow:
        return cls(
            org_id=org_id,
            kind=kind,
            resource_type=resource_type,
            resource_id=resource_id,
            actor=actor,
            user_ids=tuple(sorted(set(user_ids))),
            group_ids=tuple(sorted(set(group_ids))),
            request_id=request_id,
            summary=summary,
            created_at=utcnow(),
            revoked_user_ids=tuple(sorted(set(revoked_user_ids))),
        )

    def values(self) -> dict[str, Any]:
        """The `changes` columns (all but `revision`)."""
        out = {name: getattr(self, name) for name in _CHANGE_COLUMNS}
        out["user_ids"], out["group_ids"] = list(self.user_ids), list(self.group_ids)
        out["revoked_user_ids"] = list(self.revoked_user_ids)
        return out

    def committed(self, revision: int) -> CommittedChange:
        return CommittedChange(
            self.org_id, revision, self.kind, self.user_ids, self.group_ids, self.revoked_user_ids
        )


def record_statement_pg(insert_row: Table | None) -> Insert:
    """The one PostgreSQL statement that allocates the revision and writes the change row
    (first inserting one row into `insert_row`, when given); see `record_params_pg`."""
    return _RECORD_PG if insert_row is None else _record_with_insert_pg(insert_row)


def record_params_pg(change: ChangeRow, row: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The binds of `record_statement_pg`: the change's values, and `row`'s (every column
    of the inserted row) when there is one."""
    params = {"org_id": change.org_id}
    params.update({f"v_{name}": value for name, value in change.values().items()})
    if row is not None:
        params.update({f"i_{key}": value for key, value in row.items()})
    return params


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
    insert_row: tuple[Table, Mapping[str, Any]] | None = None,
    revoked_user_ids: list[str] | tuple[str, ...] = (),
) -> int:
    """Allocate the organization's next revision and write the change row.

    Call it as the last statement of a write transaction: the `UPDATE … RETURNING`
    takes the organization row lock until commit, so revisions commit in order.

    `insert_row` (table, values of every column): a new row that this change records,
    inserted by the same statement on PostgreSQL. A create is then exactly one
    statement, which `Database.write_one` runs as its own transaction:
    no client round trip happens while the organization row is locked. A unique
    violation of that row raises IntegrityError, as a separate INSERT would.
    """
    change = ChangeRow.of(
        org_id=org_id,
        kind=kind,
        resource_type=resource_type,
        resource_id=resource_id,
        actor=actor,
        user_ids=user_ids,
        group_ids=group_ids,
        request_id=request_id,
        summary=summary,
        revoked_user_ids=revoked_user_ids,
    )
    return record(session, change, insert_row)


def record(
    session: Session | Connection,
    change: ChangeRow,
    insert_row: tuple[Table, Mapping[str, Any]] | None = None,
) -> int:
    """`record_change` for a prepared ChangeRow, in a `Database.write` Session or on a
    `Database.write_one` Connection."""
    if isinstance(session, Session):
        # Everything else the transaction writes goes to the database first, so that the
        # organization row lock below is held for one statement and the COMMIT only.
        session.flush()
        dialect = session.get_bind().dialect.name
    else:
        dialect = session.dialect.name
    if dialect == "postgresql":
        # One round trip: WITH r AS (UPDATE … RETURNING revision) INSERT … SELECT … FROM r.
        table, row = insert_row if insert_row is not None else (None, None)
        statement = record_statement_pg(table)
        revision = session.execute(statement, record_params_pg(change, row)).scalar_one()
    else:  # SQLite: the write lock was taken at BEGIN IMMEDIATE; plain statements suffice.
        if insert_row is not None:
            session.execute(insert(insert_row[0]), dict(insert_row[1]))
        revision = session.execute(_BUMP, {"org_id": change.org_id}).scalar_one()
        session.execute(insert(_CHANGES), {**change.values(), "revision": revision})
    session.info.setdefault(_PENDING, []).append(change.committed(revision))
    return int(revision)
