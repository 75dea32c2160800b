"""Layer: worker. Waking the event tasks (worker/events/): after a write commits, and when
events are appended.

One Redis flag per organization (derive) and per subscription (deliver), so a burst of
commits sends one task, not one per commit. A flag is set with ``SET NX PX``; only the
setter sends the task, and the task clears the flag before it reads, so a commit after
that read sets it again and sends the next task. A lost wake-up (Redis or the broker down
at that instant) costs latency only: the events sweep (beat) finds change rows past the
event cursor and due subscriptions itself.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from functools import partial
from typing import Final

from celery import Celery
from redis.exceptions import LockError

from models.cache.connection import CacheRedis
from models.db.database import CommittedChange, Database
from models.settings import Settings
from worker.broker import ROUTES, TASK_EVENTS_DELIVER, TASK_EVENTS_DERIVE, sender_app
from worker.hooks import ChangeHook, hook_client

log = logging.getLogger("idsync.worker")

WAKE_MS: Final = 5_000


def derive_flag(org_id: str) -> str:
    return f"idsync:{{{org_id}}}:events:derive:wake"


def deliver_flag(org_id: str, sub_id: str) -> str:
    return f"idsync:{{{org_id}}}:events:deliver:{sub_id}:wake"


def deliver_lock(org_id: str, sub_id: str) -> str:
    return f"idsync:{{{org_id}}}:events:deliver:{sub_id}:lease"


def deliver_again(org_id: str, sub_id: str) -> str:
    return f"idsync:{{{org_id}}}:events:deliver:{sub_id}:again"


def wake(client: CacheRedis, flag: str, send: Callable[[], object]) -> bool:
    """Set ``flag`` and send the task when it was not set; -> whether it was sent."""
    if client.set(flag, "1", nx=True, px=WAKE_MS):
        send()
        return True
    return False


def derive_lock(org_id: str) -> str:
    return f"idsync:{{{org_id}}}:events:derive:lease"


def derive_again(org_id: str) -> str:
    return f"idsync:{{{org_id}}}:events:derive:again"


def exclusive(
    client: CacheRedis, lock_key: str, again_key: str, ttl_s: float, work: Callable[[], bool]
) -> bool:
    """Run ``work`` (-> whether to stop) under the lease ``lock_key``, once more for every
    request that came in meanwhile; -> False when another holder has it and will serve
    this caller's request.

    A caller that finds the lease held sets ``again_key`` and tries once more; the holder
    clears it before each round, and after letting go checks it and takes the lease back
    for another round. So a request is never left between a holder's last round and its
    release: either the holder sees it, or its caller gets the lease."""
    lock = client.lock(lock_key, timeout=ttl_s, blocking=False)
    if not lock.acquire():
        client.set(again_key, "1", px=int(ttl_s * 1000))
        if not lock.acquire():
            return False
    while True:
        client.delete(again_key)
        try:
            stop = work()
        finally:
            with contextlib.suppress(LockError):  # lapsed: another holder has it now
                lock.release()
        if stop or not client.exists(again_key) or not lock.acquire():
            return True


def send_derive(app: Celery, org_id: str) -> None:
    queue = ROUTES[TASK_EVENTS_DERIVE]["queue"]
    app.send_task(TASK_EVENTS_DERIVE, args=[org_id], queue=queue)


class EventsHook:
    """A ``Database`` listener: one derive wake-up per organization a commit touched."""

    def __init__(self, connect: Callable[[], CacheRedis], app: Celery) -> None:
        self._connect = connect
        self._client: CacheRedis | None = None
        self.app = app

    def __call__(self, changes: list[CommittedChange]) -> None:
        for org_id in sorted({ch.org_id for ch in changes}):
            try:
                if self._client is None:
                    self._client = self._connect()
                client = self._client
                wake(client, derive_flag(org_id), partial(send_derive, self.app, org_id))
            except Exception:  # the events sweep finds the change rows anyway
                log.warning("events wake-up failed", exc_info=True, extra={"org_id": org_id})

    def wake_delivery(self, org_id: str, sub_id: str) -> None:
        """Send the subscription's deliver task now (an operator asked for a redelivery)."""
        if self._client is None:
            self._client = self._connect()
        queue = ROUTES[TASK_EVENTS_DELIVER]["queue"]
        wake(
            self._client,
            deliver_flag(org_id, sub_id),
            partial(self.app.send_task, TASK_EVENTS_DELIVER, args=[sub_id], queue=queue),
        )


def install_events_hook(
    database: Database, settings: Settings, change_hook: ChangeHook | None = None
) -> EventsHook | None:
    """Register the hook when a Redis is configured (as ``install_change_hook``). With
    the change hook, the derive wake-up rides its marks' round trip (``ChangeHook.also``:
    one Redis round trip per commit, not two); without it, the hook listens itself."""
    url = settings.resolved_cache_redis_url()
    if not url:
        return None
    hook = EventsHook(lambda: hook_client(url), sender_app(settings, settings.redis_url or url))
    if change_hook is not None:
        change_hook.also.append((derive_flag, partial(send_derive, hook.app)))
    else:
        database.add_listener(hook)
    return hook
