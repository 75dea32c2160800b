"""Layer: worker. The worker's Celery app: the sender app (``worker.broker``) with the tasks
registered, the beat schedule, the heartbeat and the metrics port."""

from __future__ import annotations

from celery import Celery

from models.settings import Settings, get_settings
from worker.beat import beat_schedule
from worker.broker import sender_app
from worker.connection_tasks import register_connection_tasks
from worker.events.tasks import events_schedule, register_events
from worker.heartbeat import HeartbeatStep
from worker.maintenance import register_maintenance
from worker.metrics import install as install_metrics
from worker.task_spans import install_task_spans
from worker.tasks import COMMON, register


def create_celery(settings: Settings | None = None, broker_url: str | None = None) -> Celery:
    """The worker's app: every task registered (``celery -A worker.app``, ``idsync
    worker``, ``idsync beat``). Senders use ``worker.broker.sender_app``."""
    settings = settings or get_settings()
    app = sender_app(settings, broker_url)
    register(app)
    register_maintenance(app, COMMON)
    register_connection_tasks(app, COMMON)
    register_events(app, COMMON)
    app.conf.beat_schedule = {**beat_schedule(settings), **events_schedule(settings)}
    app.steps["worker"].add(HeartbeatStep)
    install_metrics(app)
    install_task_spans()  # OTEL_* set: trace context through the tasks (worker.task_spans)
    return app
