"""Layer: app. Scrape-time gauges of shared state: how far each organization's cache is behind
SQL, the dirty backlogs, the broker queues, rebuild progress and live workers.

Computed when ``/metrics`` is scraped, from SQL and Redis, so every API process answers
the same and no process needs to keep them. The cost is bounded: one query for the
organizations, pipelined Redis reads (chunks of ``CHUNK`` organizations), and one
indexed query per lagging organization for the age of its oldest pending change, for
at most ``max_orgs`` organizations (the ones furthest behind); those are also the only
ones with an ``org`` label. ``idsync_freshness_lag_seconds_max`` and
``idsync_orgs_lagging`` cover every organization measured. The answer is kept for
``TTL_S`` seconds, so several scrapers cost one computation.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import redis
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import select

from models.cache.connection import CacheRedis, cache_redis
from models.cache.layout import LANE_CONFIG, LANE_GRANT, LANE_REVOKE, OrgKeys
from models.db.database import Database
from models.db.tables import Change, Organization
from worker.broker import ALL_QUEUES

log = logging.getLogger("idsync.metrics")

TTL_S: Final = 5.0
CHUNK: Final = 500
TIMEOUT_S: Final = 2.0
LANES: Final = {LANE_CONFIG: "config", LANE_REVOKE: "revoke", LANE_GRANT: "grant"}
QUEUES: Final = ALL_QUEUES  # worker.broker's, the events' included
WORKERS_KEY: Final = "idsync:workers"
WORKER_STALE_S: Final = 10.0


@dataclass
class OrgState:
    org_id: str
    name: str
    revision: int
    watermark: int = 0
    built: bool = False
    oldest_pending_age_s: float | None = None
    rebuild_done: int | None = None
    rebuild_total: int | None = None

    @property
    def revision_lag(self) -> int:
        return max(0, self.revision - self.watermark)


@dataclass
class StateSnapshot:
    orgs: list[OrgState] = field(default_factory=list)
    lagging: int = 0
    max_age_s: float = 0.0
    backlog: dict[str, int] = field(default_factory=dict)
    queues: dict[str, int] = field(default_factory=dict)
    workers_live: int | None = None


def _int(value: Any, default: int = 0) -> int:
    if value is None:
        return default
    return int(value.decode() if isinstance(value, bytes) else value)


def measure(
    database: Database,
    cache: CacheRedis,
    broker: redis.Redis | None,
    *,
    max_orgs: int,
    now: float | None = None,
) -> StateSnapshot:
    """One snapshot of the state the gauges show (raises on a database or Redis error)."""
    now = time.time() if now is None else now
    with database.read() as session:
        rows = session.execute(
            select(Organization.id, Organization.name, Organization.revision)
        ).all()
    orgs = [OrgState(str(i), str(n), int(r)) for i, n, r in rows]
    snap = StateSnapshot(orgs=[], backlog=dict.fromkeys(LANES.values(), 0))
    for start in range(0, len(orgs), CHUNK):
        chunk = orgs[start : start + CHUNK]
        pipe = cache.pipeline(transaction=False)
        for org in chunk:
            keys = OrgKeys.of(org.org_id)
            pipe.hmget(keys.meta, ["gen", "wm"])
            for lane in LANES:
                pipe.zcard(keys.dirty(lane))
            pipe.hmget(keys.rebuild, ["state", "done", "total"])
        results = pipe.execute()
        step = 2 + len(LANES)
        for i, org in enumerate(chunk):
            gen, wm = results[i * step]
            org.built = gen is not None
            org.watermark = _int(wm)
            for j, name in enumerate(LANES.values()):
                snap.backlog[name] += int(results[i * step + 1 + j])
            state, done, total = results[i * step + 1 + len(LANES)]
            if state in (b"running", "running"):
                org.rebuild_done, org.rebuild_total = _int(done), _int(total)
    lagging = sorted((o for o in orgs if o.revision_lag > 0), key=lambda o: -o.revision_lag)
    snap.lagging = len(lagging)
    shown = lagging[:max_orgs]
    with database.read() as session:
        for org in shown:
            oldest = session.execute(
                select(Change.created_at)
                .where(Change.org_id == org.org_id, Change.revision > org.watermark)
                .order_by(Change.revision)
                .limit(1)
            ).scalar_one_or_none()
            if oldest is not None:
                org.oldest_pending_age_s = max(0.0, now - oldest.timestamp())
    snap.max_age_s = max((o.oldest_pending_age_s or 0.0 for o in shown), default=0.0)
    rebuilding = [o for o in orgs if o.rebuild_total is not None and o not in shown]
    snap.orgs = shown + rebuilding[: max(0, max_orgs - len(shown))]
    if broker is not None:
        pipe = broker.pipeline(transaction=False)
        for q in QUEUES:
            pipe.llen(q)
        pipe.zcount(WORKERS_KEY, now - WORKER_STALE_S, "+inf")
        *lengths, live = pipe.execute()
        snap.queues = {q: int(n) for q, n in zip(QUEUES, lengths, strict=True)}
        snap.workers_live = int(live)
    return snap


def families(snap: StateSnapshot, up: bool) -> list[Metric]:
    out: list[Metric] = []
    g = GaugeMetricFamily("idsync_state_up", "1 when the last state scrape read SQL and Redis")
    g.add_metric([], 1.0 if up else 0.0)
    out.append(g)
    if not up:
        return out
    lag = GaugeMetricFamily(
        "idsync_org_revision_lag",
        "SQL revision minus the cache's watermark (changes not yet in the cache)",
        labels=["org"],
    )
    age = GaugeMetricFamily(
        "idsync_org_freshness_lag_seconds",
        "Age of the oldest change not yet in the cache (0: up to date)",
        labels=["org"],
    )
    built = GaugeMetricFamily(
        "idsync_org_cache_built", "1 when the organization's cache is built", labels=["org"]
    )
    progress = GaugeMetricFamily(
        "idsync_rebuild_progress_ratio",
        "Done / total users of a running full rebuild",
        labels=["org"],
    )
    for org in snap.orgs:
        lag.add_metric([org.name], float(org.revision_lag))
        age.add_metric([org.name], org.oldest_pending_age_s or 0.0)
        built.add_metric([org.name], 1.0 if org.built else 0.0)
        if org.rebuild_total is not None:
            ratio = (org.rebuild_done or 0) / org.rebuild_total if org.rebuild_total else 0.0
            progress.add_metric([org.name], ratio)
    out += [lag, age, built, progress]
    mx = GaugeMetricFamily(
        "idsync_freshness_lag_seconds_max",
        "Largest age of a change not yet in the cache, over the organizations measured",
    )
    mx.add_metric([], snap.max_age_s)
    lagging = GaugeMetricFamily(
        "idsync_orgs_lagging", "Organizations whose cache is behind SQL (any revision lag)"
    )
    lagging.add_metric([], float(snap.lagging))
    backlog = GaugeMetricFamily(
        "idsync_dirty_backlog",
        "Users / groups marked dirty and not yet recomputed, by lane, all organizations",
        labels=["lane"],
    )
    for lane, n in snap.backlog.items():
        backlog.add_metric([lane], float(n))
    out += [mx, lagging, backlog]
    if snap.workers_live is not None:
        queues = GaugeMetricFamily(
            "idsync_queue_length",
            "Celery messages waiting in the broker, by queue",
            labels=["queue"],
        )
        for q, n in snap.queues.items():
            queues.add_metric([q], float(n))
        live = GaugeMetricFamily(
            "idsync_workers_live", "Worker nodes whose heartbeat is at most 10 s old"
        )
        live.add_metric([], float(snap.workers_live))
        out += [queues, live]
    return out


class StateCollector(Collector):
    """The gauges above, for ``/metrics`` (``models.metrics.registry``)."""

    def __init__(
        self,
        database: Database,
        cache_url: str | None,
        broker_url: str | None,
        *,
        max_orgs: int,
    ) -> None:
        self.database = database
        self.cache_url = cache_url
        self.cache: CacheRedis | None = None  # made on first scrape (a cluster's connects)
        self.broker = self._client(broker_url)
        self.max_orgs = max_orgs
        self._lock = threading.Lock()
        self._at = 0.0
        self._families: Sequence[Metric] = ()

    @staticmethod
    def _client(url: str | None) -> redis.Redis | None:
        if not url:
            return None
        return redis.Redis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S)

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            if time.monotonic() - self._at > TTL_S:
                self._families = self._compute()
                self._at = time.monotonic()
            return list(self._families)

    def _compute(self) -> list[Metric]:
        if self.cache_url is None:
            return families(StateSnapshot(), up=False)
        try:
            if self.cache is None:
                self.cache = cache_redis(
                    self.cache_url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S
                )
            snap = measure(self.database, self.cache, self.broker, max_orgs=self.max_orgs)
        except Exception as exc:
            log.warning("state metrics not measured: %s", type(exc).__name__)
            return families(StateSnapshot(), up=False)
        return families(snap, up=True)

    def invalidate(self) -> None:
        """Measure afresh on the next scrape (tests)."""
        with self._lock:
            self._at = 0.0
