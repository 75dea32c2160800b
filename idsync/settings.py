"""Layer: app. Compatibility name of ``models.settings`` for the modules still importing
it from here (idsync/app.py, idsync/check_api.py); remove once they import
``models.settings``."""

from models.settings import Settings, get_settings

__all__ = ["Settings", "get_settings"]
