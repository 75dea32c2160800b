"""Layer: app. Compatibility name of ``models.metrics`` for the modules still importing it
from here (idsync/request_observer.py, idsync/check_api.py); remove once they import
``models.metrics``."""

from models.metrics import metrics

__all__ = ["metrics"]
