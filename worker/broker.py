"""Layer: worker (its sending side). The queues and task names, the Celery configuration,
and the sender app that the API process and the CLI enqueue with (by name, no task code).

Timing (the numbers are chosen together; docs/worker.md explains them):

- broker visibility timeout 30 s (IDSYNC_BROKER_VISIBILITY_TIMEOUT): a task whose
  worker was SIGKILLed is redelivered after it; kombu is told to look for such
  messages every 2 s instead of its default of every 100 s.
- every task is short: soft / hard time limits 20 / 25 s (below the visibility
  timeout), drains stop after 5 s and re-enqueue themselves, rebuilds run as chunks.
- retry backoff 1, 2, 4, 8, 10, 10 … s with jitter, and countdowns at most 10 s: a
  countdown longer than the visibility timeout would be delivered twice.
- acks_late + reject_on_worker_lost: a task interrupted by a crash runs again;
  every task is idempotent (recomputes read SQL, writes are revision-guarded).
- prefetch 1: a worker never holds a second task while a long one runs.
"""

from __future__ import annotations

from typing import Any, Final

from celery import Celery
from kombu import Queue

from models.embedded_redis import ensure_redis_url
from models.settings import Settings
from worker.lanes import PRIORITY

QUEUE_REVOKE: Final = "idsync.revoke"
QUEUE_RECOMPUTE: Final = "idsync.recompute"
QUEUE_INGEST: Final = "idsync.ingest"
QUEUE_RECONCILE: Final = "idsync.reconcile"
QUEUE_PULL: Final = "idsync.pull"
"""IdP pulls (long: one directory read each) on their own queue, so they never hold up
the outbox sweep or a drain."""
QUEUE_EVENTS: Final = "idsync.events"
"""Event derivation and webhook deliveries (worker/events/): a slow receiver waits here,
never in front of the cache's queues."""
ALL_QUEUES: Final = (
    QUEUE_REVOKE,
    QUEUE_RECOMPUTE,
    QUEUE_INGEST,
    QUEUE_RECONCILE,
    QUEUE_PULL,
    QUEUE_EVENTS,
)

TASK_DRAIN_PRIORITY: Final = "idsync.drain.priority"
TASK_DRAIN_BULK: Final = "idsync.drain.bulk"
TASK_SWEEP: Final = "idsync.ingest.sweep"
TASK_IDP_PULL: Final = "idsync.ingest.idp_pull"
TASK_CONNECTION_PULL: Final = "idsync.ingest.connection_pull"
TASK_DISPATCH_CONNECTIONS: Final = "idsync.ingest.dispatch_connections"
TASK_PRUNE_PULL_RUNS: Final = "idsync.maintenance.prune_pull_runs"
TASK_REBUILD: Final = "idsync.cache.rebuild"
TASK_REBUILD_CHUNK: Final = "idsync.cache.rebuild_chunk"
TASK_RECONCILE: Final = "idsync.cache.reconcile"
TASK_RECONCILE_ALL: Final = "idsync.cache.reconcile_all"
TASK_PRUNE_SCIM_LOG: Final = "idsync.maintenance.prune_scim_log"
TASK_RULES_APPLY: Final = "idsync.rules.apply"
TASK_EVENTS_DERIVE: Final = "idsync.events.derive"
TASK_EVENTS_DELIVER: Final = "idsync.events.deliver"
TASK_EVENTS_SWEEP: Final = "idsync.events.sweep"

ROUTES: Final[dict[str, dict[str, str]]] = {
    TASK_DRAIN_PRIORITY: {"queue": QUEUE_REVOKE},
    TASK_DRAIN_BULK: {"queue": QUEUE_RECOMPUTE},
    TASK_SWEEP: {"queue": QUEUE_INGEST},
    TASK_IDP_PULL: {"queue": QUEUE_PULL},
    TASK_CONNECTION_PULL: {"queue": QUEUE_PULL},
    TASK_DISPATCH_CONNECTIONS: {"queue": QUEUE_INGEST},
    TASK_PRUNE_PULL_RUNS: {"queue": QUEUE_RECONCILE},
    TASK_REBUILD: {"queue": QUEUE_RECONCILE},
    TASK_REBUILD_CHUNK: {"queue": QUEUE_RECONCILE},
    TASK_RECONCILE: {"queue": QUEUE_RECONCILE},
    TASK_RECONCILE_ALL: {"queue": QUEUE_RECONCILE},
    TASK_RULES_APPLY: {"queue": QUEUE_RECONCILE},
    TASK_EVENTS_DERIVE: {"queue": QUEUE_EVENTS},
    TASK_EVENTS_DELIVER: {"queue": QUEUE_EVENTS},
    TASK_EVENTS_SWEEP: {"queue": QUEUE_EVENTS},
}

SOFT_TIME_LIMIT_S: Final = 20
TIME_LIMIT_S: Final = 25
RETRY_BACKOFF_MAX_S: Final = 10
MAX_COUNTDOWN_S: Final = 10.0


def celery_config(settings: Settings, broker_url: str) -> dict[str, Any]:
    visibility = settings.broker_visibility_timeout_s
    if visibility <= TIME_LIMIT_S or visibility <= MAX_COUNTDOWN_S:
        raise ValueError(
            f"broker visibility timeout {visibility}s must exceed the task time limit "
            f"({TIME_LIMIT_S}s) and the longest countdown ({MAX_COUNTDOWN_S}s)"
        )
    return {
        "broker_url": broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": visibility,
            "unacked_restore_interval": 2,
            "unacked_restore_throttle": 1,
        },
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "task_soft_time_limit": SOFT_TIME_LIMIT_S,
        "task_time_limit": TIME_LIMIT_S,
        "task_default_queue": QUEUE_RECOMPUTE,
        "task_queues": [Queue(q) for q in ALL_QUEUES],
        "task_routes": ROUTES,
        "task_create_missing_queues": True,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "timezone": "UTC",
        "enable_utc": True,
    }


def resolve_broker_url(settings: Settings) -> str:
    return settings.redis_url or ensure_redis_url(settings)


def sender_app(settings: Settings, broker_url: str | None = None) -> Celery:
    """A Celery app that only sends tasks by name (the API process, the CLI)."""
    app = Celery("idsync")
    app.conf.update(celery_config(settings, broker_url or resolve_broker_url(settings)))
    app.conf.idsync_settings = settings
    return app


def enqueue_drain(app: Celery, org_id: str, wake: str) -> None:
    name = TASK_DRAIN_PRIORITY if wake == PRIORITY else TASK_DRAIN_BULK
    app.send_task(name, args=[org_id], queue=ROUTES[name]["queue"])
