"""Layer: worker. The event tasks (queue ``idsync.events``), ids in, idempotent:

- ``idsync.events.derive(org_id)``: change rows past the event cursor -> events
  (``worker.events.derive``); then wakes the organization's active subscriptions.
- ``idsync.events.deliver(subscription_id)``: that subscription's due events, in order
  (``worker.events.delivery``), under a per-subscription lease; a short backoff is a
  countdown, a long one is left to the sweep.
- ``idsync.events.sweep()`` (beat): organizations whose event cursor is behind their
  revision, and active subscriptions with events to send and no backoff pending.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any, Final

import httpx
from celery import Celery, Task
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from models.db.base import utcnow
from models.db.event_log import events_after
from models.db.event_tables import EventCursor, WebhookSubscription
from models.db.tables import Organization
from models.db.webhooks import (
    active_subscriptions,
    due_subscriptions,
    note_error,
    subscriptions_with_redeliveries,
)
from models.outbound_urls import GuardedTransport
from models.secret_box import SecretKeyError
from models.settings import Settings
from worker.broker import (
    MAX_COUNTDOWN_S,
    ROUTES,
    TASK_EVENTS_DELIVER,
    TASK_EVENTS_DERIVE,
    TASK_EVENTS_SWEEP,
)
from worker.event_wakes import (
    deliver_again,
    deliver_flag,
    deliver_lock,
    derive_again,
    derive_flag,
    derive_lock,
    exclusive,
    wake,
)
from worker.events.delivery import BUDGET_S, DeliverReport, Policy, deliver, summary
from worker.events.derive import DeriveReport, derive
from worker.runtime import Runtime, runtime

log = logging.getLogger("idsync.worker")
LEASE_MARGIN_S: Final = 5.0
DERIVE_LEASE_S: Final = 30.0
"""Longer than the task's hard time limit: a derivation never outlives its lease."""


def _send(rt: Runtime, name: str, *args: Any, countdown: float | None = None) -> None:
    rt.app.send_task(name, args=list(args), queue=ROUTES[name]["queue"], countdown=countdown)


def policy_of(rt: Runtime) -> Policy:
    s = rt.settings
    return Policy(
        timeout_s=s.webhook_timeout_s,
        retry_max_s=s.webhook_retry_max_s,
        failing_after_s=s.webhook_failing_after_s,
    )


def wake_deliver(rt: Runtime, org_id: str, sub_id: str) -> bool:
    return wake(
        rt.cache,
        deliver_flag(org_id, sub_id),
        lambda: _send(rt, TASK_EVENTS_DELIVER, sub_id),
    )


def _deliver_once(rt: Runtime, sub_id: str) -> dict[str, Any]:
    with rt.database.read() as session:
        org_id = session.scalar(
            select(WebhookSubscription.org_id).where(WebhookSubscription.id == sub_id)
        )
    if org_id is None:
        return {"gone": True}
    policy = policy_of(rt)
    lease_s = policy.timeout_s + policy.budget_s + LEASE_MARGIN_S
    rt.cache.delete(deliver_flag(org_id, sub_id))
    reports: list[DeliverReport] = []

    try:
        box = rt.settings.secret_box()
    except SecretKeyError as exc:  # the operator's to fix: say so where they look, and ack
        log.warning("webhook delivery needs IDSYNC_SECRET_KEY", extra={"subscription": sub_id})
        with rt.database.write() as session:
            note_error(session, sub_id, str(exc))
        return {"error": "secret key"}

    def one_round() -> bool:
        transport = GuardedTransport(allow_private=rt.settings.outbound_allow_private)
        with httpx.Client(transport=transport, follow_redirects=False) as client:
            report = deliver(rt.database, client, box, sub_id, policy)
        reports.append(report)
        return report.continuation or report.retry_in is not None

    lock, again = deliver_lock(org_id, sub_id), deliver_again(org_id, sub_id)
    if not exclusive(rt.cache, lock, again, lease_s, one_round):
        return {"busy": True}  # the holder delivers once more before it lets go
    report = reports[-1]
    if report.continuation:
        _send(rt, TASK_EVENTS_DELIVER, sub_id)
    elif report.retry_in is not None and report.retry_in <= MAX_COUNTDOWN_S:
        _send(rt, TASK_EVENTS_DELIVER, sub_id, countdown=report.retry_in)
    # a longer wait: the sweep sends the task once next_attempt_at has passed
    return summary(report)


def register_events(app: Celery, common: dict[str, Any]) -> None:
    @app.task(
        name=TASK_EVENTS_DERIVE,
        **{**common, "autoretry_for": (*common["autoretry_for"], IntegrityError)},
    )
    def derive_events(self: Task[Any, Any], org_id: str) -> dict[str, Any]:
        """Events of the organization's change rows past its event cursor (IntegrityError:
        two derivations raced on SQLite; the retry finds the work done)."""
        rt = runtime(app)
        rt.cache.delete(derive_flag(org_id))
        reports: list[DeriveReport] = []

        deadline = time.monotonic() + BUDGET_S

        def one_round() -> bool:
            while True:
                report = derive(rt.database, org_id)
                reports.append(report)
                if report.events:
                    with rt.database.read() as session:
                        subs = active_subscriptions(session, org_id)
                    for sub_id in subs:
                        wake_deliver(rt, org_id, sub_id)
                if not report.more:
                    return False
                if time.monotonic() >= deadline:  # a backlog: the next task goes on
                    _send(rt, TASK_EVENTS_DERIVE, org_id)
                    return True

        lock, again = derive_lock(org_id), derive_again(org_id)
        if not exclusive(rt.cache, lock, again, DERIVE_LEASE_S, one_round):
            return {"busy": True}  # the holder derives once more before it lets go
        return {"rounds": [r.as_dict() for r in reports]}

    @app.task(name=TASK_EVENTS_DELIVER, **common)
    def deliver_events(self: Task[Any, Any], sub_id: str) -> dict[str, Any]:
        """One subscription's due events, in order (at least once)."""
        return _deliver_once(runtime(app), sub_id)

    @app.task(name=TASK_EVENTS_SWEEP, **common)
    def sweep_events(self: Task[Any, Any]) -> dict[str, int]:
        """Derivations whose wake-up was lost, deliveries due (backoff over, lost wake-up,
        a worker killed mid-delivery once its lease lapsed)."""
        rt = runtime(app)
        with rt.database.read() as session:
            behind = list(
                session.scalars(
                    select(Organization.id)
                    .outerjoin(EventCursor, EventCursor.org_id == Organization.id)
                    .where(Organization.revision > func.coalesce(EventCursor.revision, 0))
                )
            )
            due = [
                (sub_id, org_id)
                for sub_id, org_id, cursor, types in due_subscriptions(session, utcnow())
                if events_after(session, org_id, cursor, 1, types)
            ]
            due += subscriptions_with_redeliveries(session)
        for org_id in behind:
            wake(rt.cache, derive_flag(org_id), partial(_send, rt, TASK_EVENTS_DERIVE, org_id))
        sent = sum(wake_deliver(rt, org_id, sub_id) for sub_id, org_id in set(due))
        return {"derive": len(behind), "deliver": sent}

    _ = (derive_events, deliver_events, sweep_events)


def events_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """The events sweep, on the outbox sweep's interval."""
    return {"events-sweep": {"task": TASK_EVENTS_SWEEP, "schedule": settings.sweep_interval_s}}
