"""Layer: worker. Delivering one subscription's events, in log order, one at a time.

The subscription's cursor is the ``seq`` of the last event handled; the next event is sent
only when that one was delivered (2xx) or refused (a 4xx other than 429: not retried), so
a receiver sees the organization's events in revision order. The cursor and the delivery
log move in one transaction after the response: a worker killed mid-POST leaves the cursor
where it was, and the event is sent again, with the same id (at least once).

5xx, 429, timeouts and connection errors are retried with exponential backoff and jitter
(1, 2, 4 … s up to ``IDSYNC_WEBHOOK_RETRY_MAX_S``; a ``Retry-After`` of 429 / 503 is
honoured within that cap); the wait is stored as ``next_attempt_at``. A subscription that
has not succeeded for ``IDSYNC_WEBHOOK_FAILING_AFTER_S`` is marked ``failing`` and gets no
more attempts until an operator resumes it; its events stay in the log.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import httpx

from models.db.base import utcnow
from models.db.database import Database
from models.db.event_log import envelope, events_after
from models.db.event_tables import Event, WebhookSubscription
from models.db.webhooks import (
    FAILING,
    Attempt,
    apply_outcome,
    lock_subscription,
    open_secret,
    record_attempts,
    redeliveries,
)
from models.secret_box import SecretBox
from models.webhook_signature import signed_headers

BUDGET_S: Final = 5.0
BATCH: Final = 20
"""Events sent before their outcomes are committed together (one transaction per batch)."""
BACKOFF_BASE_S: Final = 1.0
ERROR_MAX_CHARS: Final = 500


@dataclass(frozen=True)
class Policy:
    timeout_s: float = 10.0
    retry_max_s: float = 600.0
    failing_after_s: float = 86_400.0
    budget_s: float = BUDGET_S


@dataclass
class DeliverReport:
    delivered: int = 0
    failed: int = 0
    retried: int = 0
    redelivered: int = 0
    retry_in: float | None = None
    """A retry waits this long (seconds); the caller schedules it."""
    continuation: bool = False
    failing: bool = False
    gone: bool = False


def backoff_s(attempts: int, cap_s: float, retry_after: float | None = None) -> float:
    """The wait before attempt ``attempts + 1``: exponential, half of it jittered."""
    if retry_after is not None:
        return min(cap_s, max(retry_after, BACKOFF_BASE_S))
    ceiling: float = min(cap_s, BACKOFF_BASE_S * 2.0 ** min(max(attempts - 1, 0), 30))
    jitter: float = random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not a secret
    return ceiling / 2 + jitter


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None or response.status_code not in (429, 503):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def body_of(event: Event) -> bytes:
    return json.dumps(envelope(event), separators=(",", ":"), sort_keys=True).encode()


def post(
    client: httpx.Client, url: str, secret: str, event: Event, timeout_s: float
) -> tuple[Attempt, float | None]:
    """One signed POST of ``event`` -> (how it ended, the receiver's Retry-After)."""
    body = body_of(event)
    headers = signed_headers(secret, event.event_id, int(time.time()), body)
    timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0))
    try:
        response = client.post(url, content=body, headers=headers, timeout=timeout)
    except httpx.TransportError as exc:  # timeouts, refused or reset connections
        error = f"{type(exc).__name__}: {exc}"[:ERROR_MAX_CHARS]
        return Attempt("retry", None, error, utcnow()), None
    code = response.status_code
    if 200 <= code < 300:
        return Attempt("delivered", code, None, utcnow()), None
    outcome = "retry" if code == 429 or code >= 500 else "failed"
    error = f"HTTP {code}: {response.text[:200]}"
    return Attempt(outcome, code, error, utcnow()), _retry_after(response)


def _next_events(database: Database, sub: WebhookSubscription, limit: int) -> list[Event]:
    with database.read() as session:
        found = events_after(session, sub.org_id, int(sub.cursor), limit, sub.event_types or ())
        session.expunge_all()
    return found


def _redeliver(
    database: Database,
    client: httpx.Client,
    sub: WebhookSubscription,
    secret: str,
    policy: Policy,
    report: DeliverReport,
) -> None:
    """Operator-requested redeliveries: one attempt each, outside the ordered stream."""
    with database.read() as session:
        seqs = [d.seq for d in redeliveries(session, sub.id)]
        events = [
            e for seq in seqs for e in events_after(session, sub.org_id, seq - 1, 1) if e.seq == seq
        ]
        for e in events:
            session.expunge(e)
    for event in events:
        attempt, _ = post(client, sub.url, secret, event, policy.timeout_s)
        with database.write() as session:
            record_attempts(session, sub.id, [(event, attempt)], redelivery=True)
        report.redelivered += 1


def deliver(
    database: Database,
    client: httpx.Client,
    box: SecretBox,
    sub_id: str,
    policy: Policy,
) -> DeliverReport:
    """Send the subscription's due events in order until none is left, a retry must wait,
    or the budget is spent (``report.continuation``)."""
    report = DeliverReport()
    deadline = time.monotonic() + policy.budget_s
    first = True
    while True:
        with database.read() as session:
            sub = session.get(WebhookSubscription, sub_id)
            if sub is not None:
                session.expunge(sub)
        if sub is None:
            report.gone = True
            return report
        if sub.state == FAILING:
            report.failing = True
            return report
        secret = open_secret(box, sub.secret_sealed)
        if first:
            _redeliver(database, client, sub, secret, policy, report)
            first = False
        now = utcnow()
        if sub.next_attempt_at is not None and sub.next_attempt_at > now:
            report.retry_in = (sub.next_attempt_at - now).total_seconds()
            return report
        events = _next_events(database, sub, BATCH)
        if not events:
            return report
        sent: list[tuple[Event, Attempt, float | None]] = []
        for event in events:
            attempt, retry_after = post(client, sub.url, secret, event, policy.timeout_s)
            sent.append((event, attempt, retry_after))
            if attempt.outcome == "retry" or time.monotonic() >= deadline:
                break
        _record(database, sub.id, sent, policy, report)
        if report.retry_in is not None or report.failing:
            return report
        if time.monotonic() >= deadline:
            report.continuation = True
            return report


def _record(
    database: Database,
    sub_id: str,
    sent: list[tuple[Event, Attempt, float | None]],
    policy: Policy,
    report: DeliverReport,
) -> None:
    """The outcomes of a batch, in one transaction (a worker killed before it commits sends
    the whole batch again: at least once)."""
    with database.write() as session:
        rows = record_attempts(session, sub_id, [(e, a) for e, a, _ in sent])
        sub = lock_subscription(session, sub_id)
        for (event, attempt, retry_after), row in zip(sent, rows, strict=True):
            next_at: datetime | None = None
            if attempt.outcome == "retry":
                wait = backoff_s(row.attempts, policy.retry_max_s, retry_after)
                next_at = attempt.at + timedelta(seconds=wait)
                report.retry_in = wait
            apply_outcome(
                sub,
                attempt,
                cursor=None if attempt.outcome == "retry" else int(event.seq),
                next_attempt_at=next_at,
                failing_after_s=policy.failing_after_s,
            )
            counter = {"delivered": "delivered", "failed": "failed"}.get(attempt.outcome, "retried")
            setattr(report, counter, getattr(report, counter) + 1)
        if sub.state == FAILING:
            report.failing, report.retry_in = True, None


def summary(report: DeliverReport) -> dict[str, Any]:
    return dict(vars(report))
