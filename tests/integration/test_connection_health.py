"""Pooled PostgreSQL connections: killed-while-idle ones are replaced transparently, and
recently used ones cost no extra ping round trip."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from models.db import session as session_module
from models.db.database import Database


def test_idle_connection_killed_by_the_server_is_replaced(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session_module, "PING_AFTER_IDLE_S", 0.0)
    db = Database(pg_url, pool_size=1)
    killer = Database(pg_url)
    try:
        with db.read() as session:
            pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with killer.engine.connect() as conn:  # the pool's idle connection dies
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            conn.commit()
        with db.read() as session:
            assert session.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        killer.dispose()
        db.dispose()


def test_recently_used_connections_are_not_pinged(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(pg_url, pool_size=1)
    pings: list[Any] = []
    real_ping = db.engine.dialect.do_ping

    def counting_ping(dbapi_conn: Any) -> bool:
        pings.append(dbapi_conn)
        return real_ping(dbapi_conn)

    monkeypatch.setattr(db.engine.dialect, "do_ping", counting_ping)
    try:
        for _ in range(3):
            with db.read() as session:
                session.execute(text("SELECT 1"))
        assert pings == []
        monkeypatch.setattr(session_module, "PING_AFTER_IDLE_S", 0.0)
        with db.read() as session:
            session.execute(text("SELECT 1"))
        assert len(pings) == 1
    finally:
        db.dispose()
