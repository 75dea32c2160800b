"""Recording the SQL an app runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from tests.support.scim_client import Orgs


@contextmanager
def executed_statements(orgs: Orgs) -> Iterator[list[str]]:
    """Every SQL statement the app executes inside, through the database's engines
    (writer, reader and one-statement writes)."""
    statements: list[str] = []
    database = orgs.db

    def record(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        statements.append(statement)

    engines = database.engines
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)
