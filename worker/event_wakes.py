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

import logging
from collections.abc import Callable
from functools import partial
from typing import Final

from celery import Celery

from models.cache.connection import CacheRedis
from models.db.database import CommittedChange, Database
from models.settings import Settings
from worker.broker import ROUTES, TASK_EVENTS_DELIVER, TASK_EVENTS_DERIVE, sender_app
from worker.hooks import hook_client

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


def install_events_hook(database: Database, settings: Settings) -> EventsHook | None:
    """Register the hook when a Redis is configured (as ``install_change_hook``)."""
    url = settings.resolved_cache_redis_url()
    if not url:
        return None
    hook = EventsHook(lambda: hook_client(url), sender_app(settings, settings.redis_url or url))
    database.add_listener(hook)
    return hook
