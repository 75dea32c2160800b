"""Fixtures for unit tests that need the app but no database rows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from idsync.app import create_app
from models.db.database import Database
from models.db.metadata import metadata
from models.settings import Settings


@pytest.fixture
def orgs_app(tmp_path: Path) -> Iterator[TestClient]:
    db = Database(f"sqlite:///{tmp_path / 'unit.db'}")
    metadata.create_all(db.engine)
    try:
        with TestClient(create_app(Settings(), db=db)) as client:
            yield client
    finally:
        db.dispose()
