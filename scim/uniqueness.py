"""Uniqueness (409) from the database's unique indexes, without a pre-check round trip."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from scim.errors import Uniqueness


def execute_or_conflict(
    session: Session,
    statement: Executable,
    params: dict[str, Any],
    unique_column: str,
    message: str,
) -> None:
    """Execute `statement`; a violation of the unique index on `unique_column` is 409."""
    try:
        session.execute(statement, params)
    except IntegrityError as exc:
        if unique_column in str(exc.orig):
            raise Uniqueness(message) from exc
        raise


def flush_or_conflict(session: Session, unique_column: str, message: str) -> None:
    """Flush; a violation of the unique index on `unique_column` becomes 409 uniqueness.

    The index is the only arbiter (two racing POSTs cannot both pass it). No savepoint:
    a violation aborts the transaction, and the request rolls it back anyway.
    """
    try:
        session.flush()
    except IntegrityError as exc:
        if unique_column in str(exc.orig):
            raise Uniqueness(message) from exc
        raise
