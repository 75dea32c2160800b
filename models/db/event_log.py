"""Layer: store. The event log: appending derived events under the organization's event
cursor, reading them after a cursor (the events API, the deliverer), and their wire form.

Events are appended only by the derivation (``worker.events.derive``), in the same
transaction that moves ``event_cursors`` past the change rows they come from, so each
change row yields its events exactly once and a rolled-back write yields none.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from models.db.database import Database
from models.db.event_tables import Event, EventCursor

API_PAGE_MAX: Final = 1000


def event_id_for(org_id: str, seq: int) -> str:
    """The stable id of the organization's ``seq``-th event (the same on every delivery)."""
    digest = hashlib.blake2b(f"{org_id}:{seq}".encode(), digest_size=12).hexdigest()
    return f"evt_{digest}"


@contextmanager
def serial_transaction(database: Database) -> Iterator[Session]:
    """A write transaction that reads one snapshot: REPEATABLE READ on PostgreSQL (the
    organization's revision read first is what every later read sees; a concurrent
    derivation of the same organization then fails with a serialization error, which the
    task retries), SQLite's BEGIN IMMEDIATE otherwise."""
    if database.dialect == "postgresql":
        with database.engine.connect() as raw:
            conn = raw.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin(), Session(bind=conn) as session:
                yield session
                session.flush()
        return
    with database.sessions() as session, session.begin():
        yield session


def ensure_cursor(database: Database, org_id: str) -> None:
    """Create the organization's event cursor row if it has none (idempotent)."""
    with database.write() as session:
        insert = postgresql.insert if database.dialect == "postgresql" else sqlite.insert
        session.execute(
            insert(EventCursor)
            .values(org_id=org_id, revision=0, seq=0)
            .on_conflict_do_nothing(index_elements=["org_id"])
        )


def lock_cursor(session: Session, org_id: str) -> EventCursor:
    """The organization's cursor, locked until the transaction ends (``ensure_cursor``
    first)."""
    return session.scalars(
        select(EventCursor).where(EventCursor.org_id == org_id).with_for_update()
    ).one()


def append(
    session: Session,
    cursor: EventCursor,
    drafts: Sequence[tuple[str, int, datetime, dict[str, Any]]],
) -> int:
    """Append ``(type, revision, occurred_at, data)`` in order; -> the last ``seq``."""
    seq = int(cursor.seq)
    rows = []
    for kind, revision, occurred_at, data in drafts:
        seq += 1
        rows.append(
            Event(
                org_id=cursor.org_id,
                seq=seq,
                event_id=event_id_for(cursor.org_id, seq),
                type=kind,
                revision=revision,
                occurred_at=occurred_at,
                data=data,
            )
        )
    session.add_all(rows)
    cursor.seq = seq
    return seq


def events_after(
    session: Session,
    org_id: str,
    after: int,
    limit: int,
    types: Sequence[str] = (),
) -> list[Event]:
    """The organization's events with ``seq > after`` in log order (``types``: only those)."""
    query = select(Event).where(Event.org_id == org_id, Event.seq > after)
    if types:
        query = query.where(Event.type.in_(list(types)))
    return list(session.scalars(query.order_by(Event.seq).limit(limit)))


def event_at(session: Session, org_id: str, event_id: str) -> Event | None:
    return session.scalars(
        select(Event).where(Event.org_id == org_id, Event.event_id == event_id)
    ).one_or_none()


def last_seq(session: Session, org_id: str) -> int:
    value = session.scalar(select(EventCursor.seq).where(EventCursor.org_id == org_id))
    return int(value or 0)


def envelope(event: Event) -> dict[str, Any]:
    """The event as every consumer sees it (webhook body, events API item)."""
    return {
        "id": event.event_id,
        "type": event.type,
        "org_id": event.org_id,
        "sequence": event.seq,
        "revision": event.revision,
        "occurred_at": event.occurred_at.isoformat(),
        "data": event.data,
    }
