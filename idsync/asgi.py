"""Layer: app. ASGI entry point for uvicorn: `idsync.asgi:app`."""

from __future__ import annotations

import gc

from idsync.app import create_app
from idsync.logs import configure_logging
from models.settings import get_settings

_settings = get_settings()
configure_logging(_settings.log_level)
app = create_app(_settings)

# Everything built so far (schemas, SQLAlchemy mappers, routes, settings) lives as long as
# the process: move it out of the collector's generations, so that the full collections
# a busy server triggers scan only request garbage (a p99 matter, docs/benchmarks.md).
gc.freeze()
