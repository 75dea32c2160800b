"""The complete table metadata: importing this module registers every table module."""

from __future__ import annotations

from models.db import config_tables as config_tables
from models.db import tables as tables
from models.db.base import Base

metadata = Base.metadata

__all__ = ["metadata"]
