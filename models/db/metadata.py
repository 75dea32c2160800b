"""Layer: store. The complete table metadata: importing this module registers every table module."""

from __future__ import annotations

import models.db.config_tables
import models.db.connection_tables
import models.db.event_tables
import models.db.observability_tables
import models.db.tables  # noqa: F401 - imported for their table registrations
from models.db.base import Base

metadata = Base.metadata

__all__ = ["metadata"]
