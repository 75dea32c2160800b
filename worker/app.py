"""Layer: worker. ``celery -A worker.app worker`` / ``beat``: the app built from the environment."""

from __future__ import annotations

from worker.factory import create_celery

app = create_celery()
