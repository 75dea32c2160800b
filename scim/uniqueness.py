"""Layer: store. Uniqueness (409) from the database's unique indexes, without a pre-check round
trip."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from scim.errors import Uniqueness


@contextmanager
def conflict_is_409(unique_column: str, message: str) -> Iterator[None]:
    """A violation of the unique index on `unique_column` inside the block is 409.

    The index is the only arbiter (two racing POSTs cannot both pass it). No savepoint:
    a violation aborts the transaction, and the request rolls it back anyway.
    """
    try:
        yield
    except IntegrityError as exc:
        if unique_column in str(exc.orig):
            raise Uniqueness(message) from exc
        raise


def flush_or_conflict(session: Session, unique_column: str, message: str) -> None:
    """Flush; a violation of the unique index on `unique_column` becomes 409 uniqueness."""
    with conflict_is_409(unique_column, message):
        session.flush()
