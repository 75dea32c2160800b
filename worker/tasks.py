"""Layer: worker. Thin Celery tasks (ids in) over the plain functions of ``worker.pipeline``,
``worker.rebuild``, ``worker.reconcile`` and ``worker.idp``."""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery import Celery, Task
from redis.exceptions import ClusterError, SlotNotCoveredError, TryAgainError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError

from models.cache.layout import OrgKeys
from models.db.database import CommitRefused
from models.db.tables import Organization
from worker import rebuild as rb
from worker import rule_jobs
from worker.broker import (
    RETRY_BACKOFF_MAX_S,
    ROUTES,
    TASK_DRAIN_BULK,
    TASK_DRAIN_PRIORITY,
    TASK_IDP_PULL,
    TASK_REBUILD,
    TASK_REBUILD_CHUNK,
    TASK_RECONCILE,
    TASK_RECONCILE_ALL,
    TASK_RULES_APPLY,
    TASK_SWEEP,
)
from worker.idp.connection_runs import pull_from_settings
from worker.lanes import ALL_LANES, BULK, BULK_LANES, PRIORITY, PRIORITY_LANES
from worker.pipeline import RULES_ACTOR, DrainReport, drain, ingest_outbox, summary
from worker.reconcile import reconcile
from worker.runtime import REDIS_TIMEOUT_S, Runtime, runtime

log = logging.getLogger("idsync.worker")

TRANSIENT = (
    OperationalError,
    redis.ConnectionError,
    redis.TimeoutError,
    ClusterError,
    TryAgainError,
    SlotNotCoveredError,
    CommitRefused,
)
"""Retried with backoff: a database or Redis that may come back (a Redis Cluster too:
CLUSTERDOWN / MASTERDOWN while a failover runs, TRYAGAIN during a resharding, a slot
the client's map does not cover yet), and a write the commit guard refused because the
cache could not take its revocation (worker.hooks). Not: cross-slot errors (a bug)."""
REBUILD_KICK_MS = 30_000
IDP_PULL_SOFT_TIME_LIMIT_S = 3600
IDP_PULL_LOCK = "idsync:idp-pull:lock"
"""Keeps two pulls from overlapping. On the broker, with the other keys that are no
organization's: the cache holds organizations' keys only (it may be a Redis Cluster)."""

COMMON: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": TRANSIENT,
    "retry_backoff": 1,
    "retry_backoff_max": RETRY_BACKOFF_MAX_S,
    "retry_jitter": True,
    "max_retries": None,
    "ignore_result": True,
}


def _send(rt: Runtime, name: str, *args: Any, countdown: float | None = None) -> None:
    rt.app.send_task(name, args=list(args), queue=ROUTES[name]["queue"], countdown=countdown)


def kick_rebuild(rt: Runtime, org_id: str) -> bool:
    """Enqueue a rebuild unless one was kicked in the last 30 s."""
    key = f"{OrgKeys.of(org_id).rebuild}:kick"
    if rt.cache.set(key, "1", nx=True, px=REBUILD_KICK_MS):
        _send(rt, TASK_REBUILD, org_id)
        return True
    return False


def _after_drain(rt: Runtime, org_id: str, wake: str, report: DrainReport) -> None:
    name = TASK_DRAIN_PRIORITY if wake == PRIORITY else TASK_DRAIN_BULK
    if report.not_built:
        kick_rebuild(rt, org_id)
    elif report.continuation:
        _send(rt, name, org_id)  # the budget ran out: the next task goes on
    # busy: the holder was asked to run once more (``claim``); a dead holder's lease
    # expires and the sweep wakes the lane


def register(app: Celery) -> None:  # noqa: PLR0915 - the task table
    def run_drain(org_id: str, wake: str) -> dict[str, Any]:
        rt = runtime(app)
        report = drain(
            rt.database,
            rt.writer(org_id),
            org_id,
            wake,
            enqueue=rt.enqueue,
            pause_s=rt.settings.fault_drain_pause_s,
        )
        _after_drain(rt, org_id, wake, report)
        return summary(report)

    @app.task(name=TASK_DRAIN_PRIORITY, **COMMON)
    def drain_priority(self: Task[Any, Any], org_id: str) -> dict[str, Any]:
        """Config and revoke lanes of one organization (queue idsync.revoke)."""
        return run_drain(org_id, PRIORITY)

    @app.task(name=TASK_DRAIN_BULK, **COMMON)
    def drain_bulk(self: Task[Any, Any], org_id: str) -> dict[str, Any]:
        """Grant lane of one organization (queue idsync.recompute)."""
        return run_drain(org_id, BULK)

    @app.task(name=TASK_SWEEP, **COMMON)
    def sweep(self: Task[Any, Any]) -> dict[str, int]:
        """Every organization: catch up from the outbox, wake stuck lanes, bootstrap caches."""
        rt = runtime(app)
        with rt.database.read() as session:
            orgs = session.execute(select(Organization.id, Organization.revision)).all()
        counts = {"orgs": len(orgs), "ingested": 0, "woken": 0, "rebuilds": 0}
        for org_id, revision in orgs:
            writer = rt.writer(org_id)
            meta = writer.meta()
            if not meta.writable:
                counts["rebuilds"] += int(kick_rebuild(rt, org_id))
                continue
            woken: set[str] = set()
            if meta.cursor < int(revision):
                ingest = ingest_outbox(rt.database, writer, org_id)
                counts["ingested"] += ingest.rows
                woken.update(ingest.wakes)
            for wake, lanes in ((PRIORITY, PRIORITY_LANES), (BULK, BULK_LANES)):
                keys = writer.keys
                if rt.cache.exists(keys.lease(wake)):
                    continue  # its holder runs once more when asked (``again``)
                if writer.backlog(lanes) or rt.cache.exists(keys.again(wake)):
                    woken.add(wake)
            for wake in sorted(woken):
                rt.enqueue(org_id, wake)
            counts["woken"] += len(woken)
            writer.watermark(ALL_LANES)
        return counts

    @app.task(name=TASK_REBUILD, **COMMON)
    def rebuild(self: Task[Any, Any], org_id: str) -> dict[str, Any]:
        """Start a new generation and fan out its chunks (queue idsync.reconcile)."""
        rt = runtime(app)
        writer = rt.writer(org_id)
        try:
            build = rb.start(writer, lease_ms=rb.WORKER_LEASE_MS)
        except rb.RebuildBusy as exc:
            return {"busy": str(exc)}
        gen = build.gen
        try:
            revision, total, ranges = rb.plan(rt.database, org_id)
            rb.write_labels(rt.database, writer, org_id, gen)
        except BaseException:
            writer.abort_rebuild(gen)
            rb.release(writer, build)
            raise
        rb.begin_progress(writer, gen, revision, total, len(ranges))
        for i, (lo, hi) in enumerate(ranges):
            _send(rt, TASK_REBUILD_CHUNK, org_id, gen, i, lo, hi, build.token)
        return {"gen": gen, "chunks": len(ranges), "users": total}

    @app.task(name=TASK_REBUILD_CHUNK, **COMMON)
    def rebuild_chunk(
        self: Task[Any, Any],
        org_id: str,
        gen: int,
        index: int,
        lo: str | None,
        hi: str | None,
        token: str,
    ) -> dict[str, Any]:
        rt = runtime(app)
        writer = rt.writer(org_id)
        build = rb.Build(gen, token)
        lease = writer.keys.rebuild_lease
        if writer.meta().building != gen:
            return {"abandoned": gen}
        writer.renew(lease, token, rb.WORKER_LEASE_MS)
        try:
            users, sets = rb.build_chunk(rt.database, writer, org_id, lo, hi, gen)
        except rb.RebuildBusy:
            return {"abandoned": gen}
        writer.renew(lease, token, rb.WORKER_LEASE_MS)
        flipped = rb.finish_chunk(writer, build, index, users)
        return {"users": users, "sets": len(sets), "flipped": flipped}

    @app.task(name=TASK_RECONCILE, **COMMON)
    def reconcile_org(self: Task[Any, Any], org_id: str) -> dict[str, Any]:
        rt = runtime(app)
        report = reconcile(
            rt.database,
            rt.writer(org_id),
            org_id,
            apply_rules=False,  # every rule on every group: a job of its own (below)
            tombstone_retention_s=rt.settings.tombstone_retention_s,
        )
        if report.cache_missing and not report.rebuilding:
            kick_rebuild(rt, org_id)
        rule_jobs.request(
            rt.cache,
            lambda org, job: _send(rt, TASK_RULES_APPLY, org, job),
            org_id,
            revision=rule_jobs.current_revision(rt.database, org_id),
            actor=RULES_ACTOR,
            restart_running=False,
        )
        log.info("reconcile", extra=report.as_dict())
        return report.as_dict()

    @app.task(name=TASK_RULES_APPLY, **{**COMMON, "autoretry_for": (*TRANSIENT, IntegrityError)})
    def apply_rules(self: Task[Any, Any], org_id: str, job_id: str) -> dict[str, Any]:
        """A full application of the mapping rules, chunk by chunk (worker.rule_jobs).
        IntegrityError: a concurrent write made the same binding; the retry re-reads."""
        rt = runtime(app)
        try:
            run = rule_jobs.run(rt.database, rt.cache, org_id, job_id)
        except (*TRANSIENT, IntegrityError):
            raise
        except Exception as exc:  # permanent (or past the soft time limit): log and ack
            log.exception("mapping-rule application failed", extra={"org_id": org_id})
            rule_jobs.finish(rt.cache, org_id, job_id, state="failed", error=type(exc).__name__)
            return {"outcome": "failed", "error": type(exc).__name__}
        if run.again:
            _send(rt, TASK_RULES_APPLY, org_id, job_id, countdown=run.countdown)
        return run.as_dict()

    @app.task(name=TASK_RECONCILE_ALL, **COMMON)
    def reconcile_all(self: Task[Any, Any]) -> int:
        rt = runtime(app)
        with rt.database.read() as session:
            orgs = list(session.scalars(select(Organization.id)))
        for org_id in orgs:
            _send(rt, TASK_RECONCILE, org_id)
        return len(orgs)

    @app.task(
        name=TASK_IDP_PULL,
        **{
            **COMMON,
            # A directory read can take long: acknowledged on receipt (a pull killed
            # midway is not redelivered but simply runs again at the next interval; it
            # is idempotent and deactivates nothing after a partial read), so its time
            # limits need not stay below the broker's visibility timeout.
            "acks_late": False,
            "reject_on_worker_lost": False,
            "soft_time_limit": IDP_PULL_SOFT_TIME_LIMIT_S,
            "time_limit": IDP_PULL_SOFT_TIME_LIMIT_S + 60,
        },
    )
    def idp_pull(self: Task[Any, Any]) -> dict[str, Any]:
        rt = runtime(app)
        with redis.Redis.from_url(
            app.conf.broker_url,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
        ) as broker:
            lock = broker.lock(
                IDP_PULL_LOCK, timeout=IDP_PULL_SOFT_TIME_LIMIT_S + 120, blocking=False
            )
            if not lock.acquire():
                return {"skipped": "another IdP pull is still running"}
            try:
                return pull_from_settings(rt.settings, rt.database)
            finally:
                lock.release()

    _ = (
        drain_priority,
        drain_bulk,
        sweep,
        rebuild,
        rebuild_chunk,
        reconcile_org,
        reconcile_all,
        apply_rules,
        idp_pull,
    )
