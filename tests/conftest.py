"""Shared fixtures: real PostgreSQL and SQLite databases, real Redis.

PostgreSQL: IDSYNC_TEST_PG_URL (default postgresql://postgres@127.0.0.1:5432/postgres);
a throw-away database is created per test run. Redis: IDSYNC_TEST_REDIS_URL (default
redis://127.0.0.1:6379/15). scripts/test.sh makes sure both servers are running.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.db.database import Database
from models.db.metadata import metadata
from models.db.migrate import upgrade
from models.db.session import normalize_url
from tests.support.throwaway import empty_pg_database

PG_ADMIN_URL = os.environ.get("IDSYNC_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_TEST_URL = os.environ.get("IDSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test run (dropped afterwards)."""
    with empty_pg_database(PG_ADMIN_URL, "idsync_test") as url:
        yield normalize_url(url)


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("sqlite") / "idsync.db"
    return f"sqlite:///{path}"


_SCHEMA_READY: set[str] = set()


def _fresh(url: str) -> Database:
    db = Database(url)
    if url not in _SCHEMA_READY:
        # The schema comes from the real migrations, so every test runs on what
        # `idsync db upgrade` builds in production (the databases start empty).
        upgrade(url)
        _SCHEMA_READY.add(url)
    else:
        with db.engine.begin() as conn:
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())
    return db


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> Iterator[Database]:
    """A clean database on each backend (the test runs once per backend)."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    db = _fresh(url)
    try:
        yield db
    finally:
        db.dispose()


@pytest.fixture
def pg_database(pg_url: str) -> Iterator[Database]:
    """A clean PostgreSQL database (for tests about PostgreSQL concurrency)."""
    db = _fresh(pg_url)
    try:
        yield db
    finally:
        db.dispose()
