"""The after-commit hook: the fast path from a committed change to the worker.

Registered on ``Database`` by the API process (``idsync/app.py``). After a write
commits it, in one Redis round trip per organization, marks the affected users /
groups dirty and sets a wake flag; when the flag was not set yet it enqueues one
drain task (coalescing: a burst of changes enqueues one task, not one per change).

Deactivations and deletions are written to the cache right here as revision-guarded
tombstones, before the SCIM response leaves: a revocation never waits behind a
backlog. If Redis or the broker is unreachable the hook logs and returns; the worker
catches up from the change log (the outbox), so nothing is lost.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import redis

from idsync.settings import Settings
from models.cache.layout import NO_ACCESS
from models.cache.writer import CacheWriter
from models.db.database import CommittedChange, Database
from worker.lanes import TOMBSTONE_KINDS, WAKE_OF, lanes_for
from worker.pipeline import WAKE_MS

log = logging.getLogger("idsync.worker.hook")

Enqueue = Callable[[str, str], None]


class ChangeHook:
    """``Database.add_listener(ChangeHook(redis_client, enqueue))``."""

    def __init__(self, client: redis.Redis, enqueue: Enqueue) -> None:
        self.redis = client
        self.enqueue = enqueue
        self._writers: dict[str, CacheWriter] = {}

    def _writer(self, org_id: str) -> CacheWriter:
        w = self._writers.get(org_id)
        if w is None:
            if len(self._writers) > 10_000:
                self._writers.clear()
            w = self._writers[org_id] = CacheWriter(self.redis, org_id)
        return w

    def __call__(self, changes: list[CommittedChange]) -> None:
        by_org: dict[str, list[CommittedChange]] = defaultdict(list)
        for ch in changes:
            by_org[ch.org_id].append(ch)
        for org_id, chs in by_org.items():
            try:
                self._publish(org_id, chs)
            except Exception:  # the outbox catch-up covers anything lost here
                log.warning("after-commit publish failed", exc_info=True, extra={"org_id": org_id})

    def _publish(self, org_id: str, changes: list[CommittedChange]) -> None:
        writer = self._writer(org_id)
        for ch in changes:
            if ch.kind in TOMBSTONE_KINDS and ch.user_ids:
                writer.put(ch.revision, dict.fromkeys(ch.user_ids, NO_ACCESS))
        pipe = self.redis.pipeline(transaction=False)
        wakes: list[str] = []
        for ch in changes:
            for lane, members in lanes_for(ch.kind, ch.user_ids, ch.group_ids):
                writer.mark(lane, ch.revision, members, WAKE_OF[lane], WAKE_MS, pipe)
                wakes.append(WAKE_OF[lane])
        if not wakes:
            return
        results: list[Any] = pipe.execute()
        for wake in {w for w, res in zip(wakes, results, strict=True) if res == 1}:
            self.enqueue(org_id, wake)


def install_change_hook(database: Database, settings: Settings) -> ChangeHook | None:
    """Register the hook on ``database`` when a Redis is configured (REDIS_URL or
    CACHE_REDIS_URL); without one, the worker's outbox sweep is the only path."""
    url = settings.resolved_cache_redis_url()
    if not url:
        log.info("no REDIS_URL: changes reach the cache through the worker's outbox sweep")
        return None
    from worker.factory import create_celery, enqueue_drain

    broker = settings.redis_url or url
    app = create_celery(settings, broker, with_tasks=False)
    client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)

    def enqueue(org_id: str, wake: str) -> None:
        enqueue_drain(app, org_id, wake)

    hook = ChangeHook(client, enqueue)
    database.add_listener(hook)
    return hook
