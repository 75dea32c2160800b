"""Layer: worker. The beat schedule, and a scheduler that only sends while it holds a Redis
leader lock (two ``idsync beat`` instances never double-run a job; the standby takes over
within ``LOCK_TTL_S`` when the leader dies). Every scheduled task is idempotent as well.

The scheduler outlives Redis outages: a tick that cannot reach Redis (restart, stall,
network cut) logs once, sends nothing, and tries again ``OUTAGE_RETRY_S`` later; the
process never exits on a connection error. Leadership is only claimed again through
the lock, so after an outage longer than the lock's TTL the standby may win instead.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import uuid
from typing import Any, Final

import redis
from celery.beat import Scheduler
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import LockError

from models.cache.layout import beat_lock_key
from models.settings import Settings
from worker.broker import (
    TASK_DISPATCH_CONNECTIONS,
    TASK_IDP_PULL,
    TASK_PRUNE_PULL_RUNS,
    TASK_PRUNE_SCIM_LOG,
    TASK_RECONCILE_ALL,
    TASK_SWEEP,
)

log = logging.getLogger("idsync.beat")

LOCK_TTL_S: Final = 10
REDIS_TIMEOUT_S: Final = 2.0
"""Socket timeouts of the lock's client: a stalled Redis costs a tick, not the process."""
OUTAGE_RETRY_S: Final = 1.0
OUTAGE_ERRORS: Final = (redis.RedisError, KombuOperationalError, OSError)
"""What a Redis / broker outage raises (redis-py directly, kombu while publishing)."""


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    schedule: dict[str, dict[str, Any]] = {
        "outbox-sweep": {"task": TASK_SWEEP, "schedule": settings.sweep_interval_s},
        "reconcile": {"task": TASK_RECONCILE_ALL, "schedule": settings.reconcile_interval_s},
        "scim-log-prune": {
            "task": TASK_PRUNE_SCIM_LOG,
            "schedule": settings.scim_log_prune_interval_s,
        },
        # IdP connections stored in SQL: the dispatcher sends one task per due connection
        "idp-connections": {
            "task": TASK_DISPATCH_CONNECTIONS,
            "schedule": settings.idp_dispatch_interval_s,
        },
        "idp-run-prune": {
            "task": TASK_PRUNE_PULL_RUNS,
            "schedule": settings.scim_log_prune_interval_s,
        },
    }
    if settings.idp_configured():
        schedule["idp-pull"] = {"task": TASK_IDP_PULL, "schedule": settings.idp_pull_interval_s}
    elif settings.idp_org:
        missing = ", ".join(settings.idp_missing())
        log.warning("IdP pull (%s) not scheduled: %s not set", settings.idp_kind, missing)
    return schedule


class LeaderLock:
    """redis-py's ``Lock`` (token compare-and-set scripts): renewed while held, released
    only by its owner (never a lock another instance took after ours expired)."""

    def __init__(self, client: redis.Redis, name: str = "leader", ttl_s: int = LOCK_TTL_S) -> None:
        self.key = beat_lock_key(name)
        self.token = f"{socket.gethostname()}:{uuid.uuid4().hex}"
        self.lock = client.lock(self.key, timeout=ttl_s, blocking=False, thread_local=False)
        self.held = False

    def hold(self) -> bool:
        """Acquire or renew; True while this instance is the leader. Raises on a Redis
        error (leadership is then unknown: the caller must not send)."""
        if self.held:
            try:
                self.lock.reacquire()
                return True
            except LockError:  # expired and possibly taken by another instance
                self.held = False
        self.held = self.lock.acquire(token=self.token)
        return self.held

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        # not ours any more, or Redis is away: the TTL frees it
        with contextlib.suppress(LockError, redis.RedisError):
            self.lock.release()


class LeaderScheduler(Scheduler):
    """An in-memory schedule that ticks only on the leader."""

    max_interval = 2

    def setup_schedule(self) -> None:
        super().setup_schedule()
        client = redis.Redis.from_url(
            self.app.conf.broker_url,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
        )
        self._lock = LeaderLock(client)
        self._leader = False
        self._outage = False

    def _set_outage(self, exc: BaseException | None) -> None:
        if exc is not None and not self._outage:
            log.warning("beat: Redis unreachable, sending nothing until it is back: %s", exc)
        elif exc is None and self._outage:
            log.info("beat: Redis reachable again")
        self._outage = exc is not None

    def tick(self, *args: Any, **kwargs: Any) -> float:
        try:
            leader = self._lock.hold()
        except OUTAGE_ERRORS as exc:
            self._set_outage(exc)
            leader = False
        else:
            self._set_outage(None)
        if leader != self._leader:
            log.info("beat leadership %s", "acquired" if leader else "lost")
            self._leader = leader
        if self._outage:
            return OUTAGE_RETRY_S
        if not leader:
            return float(min(self.max_interval, LOCK_TTL_S / 3))
        try:
            interval = super().tick(*args, **kwargs)
        except OUTAGE_ERRORS as exc:  # the broker went away between the lock and the send
            self._set_outage(exc)
            return OUTAGE_RETRY_S
        return float(min(interval, LOCK_TTL_S / 3))

    def close(self) -> None:
        self._lock.release()
        super().close()
