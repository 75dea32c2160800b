"""ASGI entry point for uvicorn: `idsync.asgi:app`."""

from __future__ import annotations

from idsync.app import create_app
from idsync.logs import configure_logging
from idsync.settings import get_settings

_settings = get_settings()
configure_logging(_settings.log_level)
app = create_app(_settings)
