"""Recording the SQL an app runs, whichever path runs it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from models.db.async_pg import AsyncPg, Prepared
from tests.support.scim_client import Orgs


@contextmanager
def recording_event_loop(pg: AsyncPg | None, statements: list[str]) -> Iterator[None]:
    """Append the SQL of every statement `pg` runs (reads and writes) to `statements`."""
    if pg is None:
        yield
        return
    real = {"fetch": pg.fetch, "write": pg.write}

    def recorder(name: str) -> Any:
        async def run(statement: Prepared, params: Any) -> Any:
            statements.append(statement.sql)
            return await real[name](statement, params)

        return run

    for name in real:
        setattr(pg, name, recorder(name))
    try:
        yield
    finally:
        for name in real:
            delattr(pg, name)


@contextmanager
def thread_path_only(pg: AsyncPg) -> Iterator[None]:
    """Every request takes the thread path: the event-loop lanes decline, as they do on
    a loop that `pg` was not opened on."""
    pg.serves_this_loop = lambda: False  # type: ignore[method-assign]
    try:
        yield
    finally:
        del pg.serves_this_loop


@contextmanager
def executed_statements(orgs: Orgs) -> Iterator[list[str]]:
    """Every SQL statement the app executes inside: through the database's engines
    (writer and reader) and, on PostgreSQL, on the event loop (scim.keyed_lane,
    scim.create_lane)."""
    statements: list[str] = []
    database = orgs.db

    def record(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        statements.append(statement)

    engines = {database.engine, database.read_engine}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        with recording_event_loop(orgs.a.client.app.state.scim.pg, statements):
            yield statements
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)
