"""The beat schedule, and a scheduler that only sends while it holds a Redis leader lock
(two ``idsync beat`` instances never double-run a job; the standby takes over within
``LOCK_TTL_S`` when the leader dies). Every scheduled task is idempotent as well.
"""

from __future__ import annotations

import logging
import socket
import uuid
from typing import Any, Final

import redis
from celery.beat import Scheduler

from idsync.settings import Settings
from models.cache.layout import beat_lock_key
from worker.factory import TASK_IDP_PULL, TASK_RECONCILE_ALL, TASK_SWEEP

log = logging.getLogger("idsync.beat")

LOCK_TTL_S: Final = 10
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('EXPIRE', KEYS[1], ARGV[2]); return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 1 end
return 0
"""


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    schedule: dict[str, dict[str, Any]] = {
        "outbox-sweep": {"task": TASK_SWEEP, "schedule": settings.sweep_interval_s},
        "reconcile": {"task": TASK_RECONCILE_ALL, "schedule": settings.reconcile_interval_s},
    }
    if settings.idp_configured():
        schedule["idp-pull"] = {"task": TASK_IDP_PULL, "schedule": settings.idp_pull_interval_s}
    elif settings.idp_org:
        missing = ", ".join(settings.idp_missing())
        log.warning("IdP pull (%s) not scheduled: %s not set", settings.idp_kind, missing)
    return schedule


class LeaderLock:
    def __init__(self, client: redis.Redis, name: str = "leader", ttl_s: int = LOCK_TTL_S) -> None:
        self.redis = client
        self.key = beat_lock_key(name)
        self.ttl_s = ttl_s
        self.token = f"{socket.gethostname()}:{uuid.uuid4().hex}"
        self._script = client.register_script(_RENEW)

    def hold(self) -> bool:
        """Acquire or renew; True while this instance is the leader."""
        return int(self._script(keys=[self.key], args=[self.token, self.ttl_s])) == 1

    def release(self) -> None:
        if self.redis.get(self.key) in (self.token, self.token.encode()):
            self.redis.delete(self.key)


class LeaderScheduler(Scheduler):
    """An in-memory schedule that ticks only on the leader."""

    max_interval = 2

    def setup_schedule(self) -> None:
        super().setup_schedule()
        self._lock = LeaderLock(redis.Redis.from_url(self.app.conf.broker_url))
        self._leader = False

    def tick(self, *args: Any, **kwargs: Any) -> float:
        leader = self._lock.hold()
        if leader != self._leader:
            log.info("beat leadership %s", "acquired" if leader else "lost")
            self._leader = leader
        if not leader:
            return float(min(self.max_interval, LOCK_TTL_S / 3))
        return float(min(super().tick(*args, **kwargs), LOCK_TTL_S / 3))

    def close(self) -> None:
        self._lock.release()
        super().close()
