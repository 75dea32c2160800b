"""models.db.async_pg.prepare: a statement compiled once for psycopg, with SQLAlchemy's
bind processing applied to the values the caller passes (no database needed)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from psycopg.types.json import Jsonb
from sqlalchemy import bindparam, column, select, table
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import psycopg as pg_psycopg
from sqlalchemy.dialects.postgresql import psycopg2 as pg_psycopg2

from models.db.async_pg import conninfo, prepare
from models.db.base import JSONDoc, UTCDateTime

DIALECT = pg_psycopg.dialect()
docs = table("docs", column("id"), column("doc", JSONDoc), column("at", UTCDateTime()))


def test_caller_binds_literal_binds_and_processing() -> None:
    statement = select(docs.c.id).where(
        docs.c.id == bindparam("id"),
        docs.c.doc == bindparam("doc", type_=JSONDoc),
        docs.c.at > bindparam("at", type_=UTCDateTime()),
        docs.c.id != "literal-value",
    )
    prepared = prepare(statement, DIALECT)
    assert prepared.binds == {"id", "doc", "at"}
    assert "%(id)s" in prepared.sql and "%(doc)s" in prepared.sql
    values = prepared.values(
        {"id": "x", "doc": {"a": 1}, "at": datetime(2026, 1, 1, 12, tzinfo=UTC)}
    )
    assert values["id"] == "x"
    assert isinstance(values["doc"], Jsonb) and values["doc"].obj == {"a": 1}
    assert values["at"] == datetime(2026, 1, 1, 12, tzinfo=UTC)
    (literal,) = set(values) - prepared.binds
    assert values[literal] == "literal-value"  # carried by the statement itself


def test_wrong_binds_and_unsuitable_statements_are_refused() -> None:
    prepared = prepare(select(docs.c.id).where(docs.c.id == bindparam("id")), DIALECT)
    with pytest.raises(ValueError, match="binds"):
        prepared.values({})
    with pytest.raises(ValueError, match="binds"):
        prepared.values({"id": "x", "other": 1})
    naive = prepare(
        select(docs.c.id).where(docs.c.at == bindparam("at", type_=UTCDateTime())), DIALECT
    )
    with pytest.raises(ValueError, match="naive"):
        naive.values({"at": datetime(2026, 1, 1)})  # UTCDateTime's own rule, applied here
    expanding = select(docs.c.id).where(docs.c.id.in_(bindparam("ids", expanding=True)))
    with pytest.raises(TypeError, match="IN list"):
        prepare(expanding, DIALECT)
    with pytest.raises(ValueError, match="PostgreSQL"):
        prepare(select(docs.c.id), sqlite.dialect())
    with pytest.raises(ValueError, match="PostgreSQL"):
        prepare(select(docs.c.id), pg_psycopg2.dialect())  # another driver


def test_conninfo_drops_the_driver_suffix() -> None:
    assert conninfo("postgresql+psycopg://u:p@h:5433/db") == "postgresql://u:p@h:5433/db"
    assert conninfo("postgresql://u@h/db") == "postgresql://u@h/db"
    with pytest.raises(ValueError):
        conninfo("sqlite:///x.db")
