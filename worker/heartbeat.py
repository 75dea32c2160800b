"""Layer: worker. Worker heartbeats in the broker Redis, so readiness can tell that a worker is
alive (worker layer; read by ``idsync/health.py``).

Every worker node's main process writes ``ZADD idsync:workers <unix time> <node name>``
every ``INTERVAL_S`` from a daemon thread started by a Celery worker bootstep, and
removes its entry on a clean shutdown. A node whose last beat is older than
``STALE_AFTER_S`` counts as gone (a SIGKILLed worker cannot say goodbye); entries older
than an hour are pruned.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import suppress
from typing import Any, Final

import redis
from celery import bootsteps

log = logging.getLogger("idsync.worker.heartbeat")

KEY: Final = "idsync:workers"
INTERVAL_S: Final = 2.0
STALE_AFTER_S: Final = 10.0
PRUNE_AFTER_S: Final = 3600.0
TIMEOUT_S: Final = 2.0


def beat(client: redis.Redis, node: str, now: float) -> None:
    pipe = client.pipeline(transaction=False)
    pipe.zadd(KEY, {node: now})
    pipe.zremrangebyscore(KEY, 0, now - PRUNE_AFTER_S)
    pipe.execute()


def live_workers(client: redis.Redis, now: float) -> list[str]:
    """Nodes whose last heartbeat is at most ``STALE_AFTER_S`` old."""
    nodes: list[Any] = client.zrangebyscore(KEY, now - STALE_AFTER_S, "+inf")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in nodes]


class Heartbeat:
    """A daemon thread beating for ``node`` until ``stop()``."""

    def __init__(self, broker_url: str, node: str) -> None:
        self.node = node
        self.client = redis.Redis.from_url(
            broker_url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="idsync-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                beat(self.client, self.node, time.time())
            except redis.RedisError as exc:
                if not failing:
                    log.warning("worker heartbeat failed: %s", exc)
                failing = True
            else:
                if failing:
                    log.info("worker heartbeat restored")
                failing = False
            self._stop.wait(INTERVAL_S)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=TIMEOUT_S * 2)
        with suppress(redis.RedisError):  # else it goes stale on its own
            self.client.zrem(KEY, self.node)
        self.client.close()


class HeartbeatStep(bootsteps.StartStopStep):
    """Worker bootstep: ``app.steps["worker"].add(HeartbeatStep)``."""

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.heartbeat: Heartbeat | None = None

    def start(self, parent: Any) -> None:
        self.heartbeat = Heartbeat(parent.app.conf.broker_url, parent.hostname)
        self.heartbeat.start()

    def stop(self, parent: Any) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop()
            self.heartbeat = None
