"""Recording the SQL an app runs, whichever path runs it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from models.db.async_reads import Prepared
from tests.support.scim_client import Orgs


@contextmanager
def executed_statements(orgs: Orgs) -> Iterator[list[str]]:
    """Every SQL statement the app executes inside: through the database's engines
    (writer and reader) and, on PostgreSQL, on the event loop (the keyed lane)."""
    statements: list[str] = []
    database = orgs.db

    def record(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        statements.append(statement)

    lane = orgs.a.client.app.state.scim.lane
    reads = lane.reads if lane is not None else None
    real_fetch = reads.fetch if reads is not None else None

    async def recording_fetch(statement: Prepared, params: Any) -> Any:
        statements.append(statement.sql)
        assert real_fetch is not None
        return await real_fetch(statement, params)

    engines = {database.engine, database.read_engine}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    if reads is not None:
        reads.fetch = recording_fetch  # type: ignore[method-assign]
    try:
        yield statements
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)
        if reads is not None:
            del reads.fetch
