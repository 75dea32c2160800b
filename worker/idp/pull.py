"""IdP pull (filled in below)."""

from __future__ import annotations

from typing import Any

from idsync.settings import Settings
from models.db.database import Database


def pull_from_settings(settings: Settings, database: Database) -> dict[str, Any]:
    raise NotImplementedError
