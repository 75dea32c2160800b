"""Layer: app. Readiness: can this deployment do its job right now? (read by
`/readyz` and `idsync status`; docs/operations.md#health).

Each part is checked with a short timeout and reported as ``ok`` or ``fail`` with a
reason a person can act on:

- ``database``: a ``SELECT 1`` answers;
- ``broker``: the Celery broker Redis (``REDIS_URL``) answers PING;
- ``cache``: the permission-cache Redis (``CACHE_REDIS_URL``, else ``REDIS_URL``) answers;
- ``worker``: a worker's heartbeat (``worker/heartbeat.py``) is recent;
- ``cache_built``: every organization that has data has a built cache (else its checks
  answer ``unknown``);

plus whatever the caller adds (``idsync up`` reports the processes it supervises).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import redis
from sqlalchemy import select

from idsync.operator_errors import mask_url
from models.cache.connection import CacheRedis, cache_redis
from models.cache.layout import OrgKeys
from models.db.database import Database
from models.db.tables import Organization
from models.settings import Settings
from worker.heartbeat import STALE_AFTER_S, live_workers

TIMEOUT_S: Final = 1.0
"""Connect and read timeout of each Redis probe."""
NAMED_ORGS: Final = 3
"""How many organizations without a built cache a reason names."""

Status = Literal["ok", "fail"]


@dataclass(frozen=True)
class Part:
    name: str
    status: Status
    reason: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class Readiness:
    parts: tuple[Part, ...]

    @property
    def ready(self) -> bool:
        return all(p.ok for p in self.parts)

    def as_json(self) -> dict[str, object]:
        return {
            "status": "ready" if self.ready else "unavailable",
            "parts": {p.name: {"status": p.status, "reason": p.reason} for p in self.parts},
        }


def _ok(name: str, reason: str) -> Part:
    return Part(name, "ok", reason)


def _fail(name: str, reason: str) -> Part:
    return Part(name, "fail", reason)


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class HealthProbe:
    """The checks behind ``/readyz`` and ``idsync status``. Blocking (each part bounded
    by a short timeout): call it from a thread, never on the event loop."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        extra: Callable[[], Sequence[Part]] | None = None,
        *,
        unset_redis: str = "not configured: set REDIS_URL",
    ) -> None:
        self.database = database
        self.extra = extra
        self.unset_redis = unset_redis
        self.broker_url = settings.redis_url
        self.cache_url = settings.resolved_cache_redis_url()
        self._broker = self._client(self.broker_url)
        self._shared = self.cache_url == self.broker_url
        self._cache: CacheRedis | None = self._broker if self._shared else None

    @staticmethod
    def _client(url: str | None) -> redis.Redis | None:
        if not url:
            return None
        return redis.Redis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S)

    def _cache_client(self) -> CacheRedis | None:
        """The cache's client, made on first use: a Redis Cluster client reads the slot
        map when made, so a cluster that is down fails the probe, not the process."""
        if self._cache is None and self.cache_url:
            self._cache = cache_redis(
                self.cache_url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S
            )
        return self._cache

    def check(self) -> Readiness:
        database, orgs = self._database()
        broker = self._ping("broker", lambda: self._broker, self.broker_url, self.unset_redis)
        cache = (
            Part("cache", broker.status, broker.reason)
            if self._shared
            else self._ping("cache", self._cache_client, self.cache_url, "not configured")
        )
        parts = [
            database,
            broker,
            cache,
            self._worker(broker),
            self._cache_built(cache, orgs),
        ]
        if self.extra is not None:
            parts.extend(self.extra())
        return Readiness(tuple(parts))

    def _database(self) -> tuple[Part, list[tuple[str, str]] | None]:
        try:
            with self.database.read() as session:
                rows = session.execute(
                    select(Organization.id, Organization.name).where(Organization.revision > 0)
                ).all()
        except Exception as exc:
            return _fail("database", _error_text(exc)), None
        return _ok("database", "answers"), [(r[0], r[1]) for r in rows]

    @staticmethod
    def _ping(
        name: str, client_of: Callable[[], CacheRedis | None], url: str | None, unset: str
    ) -> Part:
        if url is None:
            return _fail(name, unset)
        try:
            client = client_of()
            if client is None:
                return _fail(name, unset)
            client.ping()
        except (redis.RedisError, ValueError) as exc:  # ValueError: a malformed cluster URL
            return _fail(name, f"{mask_url(url)}: {_error_text(exc)}")
        return _ok(name, f"{mask_url(url)} answers")

    def _worker(self, broker: Part) -> Part:
        if not broker.ok or self._broker is None:
            return _fail("worker", "unknown: the broker does not answer")
        try:
            nodes = live_workers(self._broker, time.time())
        except redis.RedisError as exc:
            return _fail("worker", _error_text(exc))
        if not nodes:
            return _fail("worker", f"no worker heartbeat in the last {STALE_AFTER_S:g} s")
        return _ok("worker", f"{len(nodes)} alive: {', '.join(sorted(nodes))}")

    def _cache_built(self, cache: Part, orgs: list[tuple[str, str]] | None) -> Part:
        if orgs is None:
            return _fail("cache_built", "unknown: the database does not answer")
        if not orgs:
            return _ok("cache_built", "no organization has data yet")
        if not cache.ok or self._cache is None:
            return _fail("cache_built", "unknown: the cache Redis does not answer")
        try:
            pipe = self._cache.pipeline(transaction=False)
            for org_id, _name in orgs:
                pipe.hexists(OrgKeys.of(org_id).meta, "gen")
            built = pipe.execute()
        except redis.RedisError as exc:
            return _fail("cache_built", _error_text(exc))
        missing = sorted(name for (_id, name), ok in zip(orgs, built, strict=True) if not ok)
        if missing:
            named = ", ".join(missing[:NAMED_ORGS])
            more = f" and {len(missing) - NAMED_ORGS} more" if len(missing) > NAMED_ORGS else ""
            return _fail(
                "cache_built",
                f"not built for {named}{more}: checks answer unknown "
                "(a worker builds it; `idsync cache rebuild` forces it)",
            )
        return _ok("cache_built", f"built for all {len(orgs)} organization(s) with data")
