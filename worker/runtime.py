"""Layer: worker. Per-process resources of a worker (made lazily, after the prefork fork)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from celery import Celery

from models.cache.connection import CacheRedis, cache_redis
from models.cache.writer import CacheWriter
from models.db.database import Database
from models.settings import Settings
from worker.broker import enqueue_drain, resolve_broker_url
from worker.event_wakes import install_events_hook
from worker.hooks import install_change_hook


@dataclass
class Runtime:
    app: Celery
    settings: Settings
    database: Database
    cache: CacheRedis
    pid: int
    writers: dict[str, CacheWriter] = field(default_factory=dict)

    def writer(self, org_id: str) -> CacheWriter:
        w = self.writers.get(org_id)
        if w is None:
            w = self.writers[org_id] = CacheWriter(self.cache, org_id)
        return w

    def enqueue(self, org_id: str, wake: str) -> None:
        enqueue_drain(self.app, org_id, wake)


_RUNTIME: Runtime | None = None


def cache_redis_url(settings: Settings) -> str:
    return settings.cache_redis_url or resolve_broker_url(settings)


REDIS_TIMEOUT_S = 5.0
"""Socket timeouts of the worker's cache client: a stalled Redis fails a call (the task
retries with backoff) instead of hanging a pool process until the hard time limit."""


def cache_client(url: str) -> CacheRedis:
    return cache_redis(
        url,
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
        health_check_interval=30,
    )


def runtime(app: Celery) -> Runtime:
    global _RUNTIME  # noqa: PLW0603 - one runtime per process
    if _RUNTIME is None or _RUNTIME.pid != os.getpid():
        settings: Settings = app.conf.idsync_settings
        _RUNTIME = Runtime(
            app=app,
            settings=settings,
            database=Database(settings.resolved_database_url(), pool_size=2),
            cache=cache_client(cache_redis_url(settings)),
            pid=os.getpid(),
        )
        # writes made by the worker itself (mapping rules, IdP pull) take the fast path too
        hook = install_change_hook(_RUNTIME.database, settings)
        install_events_hook(_RUNTIME.database, settings, hook)
    return _RUNTIME
