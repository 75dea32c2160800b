"""Layer: store. Webhook subscriptions and their delivery log, always scoped to one
organization (every query names ``org_id``: one organization never reads another's).

The signing secret is stored encrypted with ``IDSYNC_SECRET_KEY`` (``models.secret_box``,
the same key and rotation as IdP connection credentials): it signs every delivery, so it
cannot be hashed. It goes through ``seal_secret`` / ``open_secret`` only and is never
returned by the API or printed by the CLI.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from models.db.base import new_id, utcnow
from models.db.config_errors import ConfigError, NotFoundError
from models.db.event_tables import WebhookDelivery, WebhookSubscription
from models.db.tables import Organization
from models.secret_box import SecretBox

ACTIVE: Final = "active"
FAILING: Final = "failing"
MIN_SECRET_LENGTH: Final = 16


def seal_secret(box: SecretBox, secret: str) -> str:
    return box.encrypt(secret)


def open_secret(box: SecretBox, sealed: str) -> str:
    return box.decrypt(sealed)


def check_types(types: Sequence[str], known: Sequence[str]) -> list[str]:
    unknown = sorted(set(types) - set(known))
    if unknown:
        raise ConfigError("events", f"unknown event type(s): {', '.join(unknown)}")
    return sorted(set(types))


def check_secret(secret: str) -> str:
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError("secret", f"a signing secret has at least {MIN_SECRET_LENGTH} characters")
    return secret


@dataclass(frozen=True, slots=True)
class NewSubscription:
    """``url`` checked by the caller (``idsync.webhook_inputs.webhook_url``: the SSRF guard
    lives above the store)."""

    url: str
    event_types: list[str]
    secret: str
    description: str = ""


def create_subscription(
    session: Session, org_id: str, new: NewSubscription, box: SecretBox, *, start_at: int
) -> WebhookSubscription:
    """A subscription that receives the events after ``seq`` ``start_at`` (the log's end
    when it is made: nothing from before is replayed)."""
    row = WebhookSubscription(
        id=new_id(),
        org_id=org_id,
        url=new.url,
        event_types=list(new.event_types),
        secret_sealed=seal_secret(box, check_secret(new.secret)),
        description=new.description,
        state=ACTIVE,
        cursor=start_at,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row


def update_subscription(
    session: Session, sub: WebhookSubscription, new: NewSubscription, box: SecretBox
) -> bool:
    """Make ``sub`` match ``new`` (types, description, secret); -> whether anything changed.
    The secret is compared with the stored one in constant time, re-sealed only if it
    differs."""
    changed = False
    if sorted(sub.event_types or []) != sorted(new.event_types):
        sub.event_types, changed = list(new.event_types), True
    if sub.description != new.description:
        sub.description, changed = new.description, True
    if not hmac.compare_digest(open_secret(box, sub.secret_sealed), check_secret(new.secret)):
        sub.secret_sealed, changed = seal_secret(box, new.secret), True
    return changed


def list_subscriptions(
    session: Session, org_id: str | None
) -> list[tuple[WebhookSubscription, str]]:
    """Subscriptions with their organization's name (all organizations: the CLI only)."""
    query = select(WebhookSubscription, Organization.name).join(
        Organization, Organization.id == WebhookSubscription.org_id
    )
    if org_id is not None:
        query = query.where(WebhookSubscription.org_id == org_id)
    return [
        (s, name) for s, name in session.execute(query.order_by(WebhookSubscription.created_at))
    ]


def get_subscription(
    session: Session, org_id: str | None, sub_id: str, *, for_update: bool = False
) -> WebhookSubscription:
    """The subscription (of ``org_id``, when given); NotFoundError otherwise."""
    query = select(WebhookSubscription).where(WebhookSubscription.id == sub_id)
    if org_id is not None:
        query = query.where(WebhookSubscription.org_id == org_id)
    if for_update:
        query = query.with_for_update()
    row = session.scalars(query).one_or_none()
    if row is None:
        raise NotFoundError("id", f"no webhook subscription {sub_id!r}")
    return row


def remove_subscription(session: Session, org_id: str | None, sub_id: str) -> None:
    row = get_subscription(session, org_id, sub_id)
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.subscription_id == row.id))
    session.delete(row)


def resume_subscription(session: Session, org_id: str | None, sub_id: str) -> WebhookSubscription:
    """A failing subscription tries again now, from the event it stopped at."""
    row = get_subscription(session, org_id, sub_id, for_update=True)
    row.state, row.failing_since, row.next_attempt_at = ACTIVE, None, None
    return row


def active_subscriptions(session: Session, org_id: str) -> list[str]:
    return list(
        session.scalars(
            select(WebhookSubscription.id).where(
                WebhookSubscription.org_id == org_id, WebhookSubscription.state == ACTIVE
            )
        )
    )


def due_subscriptions(session: Session, now: datetime) -> list[tuple[str, str, int, list[str]]]:
    """Active subscriptions not waiting for a backoff: ``(id, org_id, cursor, types)``."""
    rows = session.execute(
        select(
            WebhookSubscription.id,
            WebhookSubscription.org_id,
            WebhookSubscription.cursor,
            WebhookSubscription.event_types,
            WebhookSubscription.next_attempt_at,
        ).where(WebhookSubscription.state == ACTIVE)
    )
    return [
        (r.id, r.org_id, int(r.cursor), list(r.event_types or ()))
        for r in rows
        if r.next_attempt_at is None or r.next_attempt_at <= now
    ]


def deliveries(
    session: Session, org_id: str | None, sub_id: str, limit: int = 100
) -> list[WebhookDelivery]:
    """The subscription's delivery log, newest first."""
    sub = get_subscription(session, org_id, sub_id)
    return list(
        session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.subscription_id == sub.id)
            .order_by(WebhookDelivery.seq.desc())
            .limit(limit)
        )
    )


def request_redelivery(
    session: Session, org_id: str | None, sub_id: str, seq: int, event_id: str, event_type: str
) -> WebhookDelivery:
    """Ask for event ``seq`` to be sent to the subscription once more (out of order)."""
    sub = get_subscription(session, org_id, sub_id)
    row = session.scalars(
        select(WebhookDelivery).where(
            WebhookDelivery.subscription_id == sub.id, WebhookDelivery.seq == seq
        )
    ).one_or_none()
    if row is None:
        row = WebhookDelivery(
            subscription_id=sub.id,
            org_id=sub.org_id,
            seq=seq,
            event_id=event_id,
            event_type=event_type,
            status="redelivery",
            attempts=0,
            first_attempt_at=utcnow(),
            last_attempt_at=utcnow(),
        )
        session.add(row)
    row.redeliver = 1
    session.flush()
    return row


def redeliveries(session: Session, sub_id: str) -> list[WebhookDelivery]:
    return list(
        session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.subscription_id == sub_id, WebhookDelivery.redeliver == 1)
            .order_by(WebhookDelivery.seq)
        )
    )


@dataclass(frozen=True, slots=True)
class Attempt:
    """How one POST ended: ``outcome`` ``delivered``, ``failed`` (a 4xx other than 429:
    not retried) or ``retry``."""

    outcome: str
    status_code: int | None
    error: str | None
    at: datetime


def record_attempts(
    session: Session,
    sub_id: str,
    attempts: Sequence[tuple[Any, Attempt]],
    *,
    redelivery: bool = False,
) -> list[WebhookDelivery]:
    """Add attempts at events (``(Event row, Attempt)``) to the delivery log, in one read of
    the rows that exist already."""
    seqs = [event.seq for event, _ in attempts]
    existing = {
        d.seq: d
        for d in session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.subscription_id == sub_id, WebhookDelivery.seq.in_(seqs))
            .with_for_update()
        )
    }
    out: list[WebhookDelivery] = []
    for event, attempt in attempts:
        row = existing.get(event.seq)
        if row is None:
            row = WebhookDelivery(
                subscription_id=sub_id,
                org_id=event.org_id,
                seq=event.seq,
                event_id=event.event_id,
                event_type=event.type,
                attempts=0,
                redeliver=0,
                first_attempt_at=attempt.at,
            )
            session.add(row)
            existing[event.seq] = row
        row.attempts = (row.attempts or 0) + 1
        row.last_attempt_at = attempt.at
        row.last_status_code = attempt.status_code
        row.last_error = attempt.error
        row.status = "retrying" if attempt.outcome == "retry" else attempt.outcome
        if attempt.outcome == "delivered":
            row.delivered_at = attempt.at
        if redelivery:
            row.redeliver = 0
        out.append(row)
    session.flush()
    return out


def lock_subscription(session: Session, sub_id: str) -> WebhookSubscription:
    sub = session.get(WebhookSubscription, sub_id, with_for_update=True)
    if sub is None:
        raise NotFoundError("id", f"no webhook subscription {sub_id!r}")
    return sub


def apply_outcome(
    sub: WebhookSubscription,
    attempt: Attempt,
    *,
    cursor: int | None,
    next_attempt_at: datetime | None,
    failing_after_s: float,
) -> None:
    """The subscription's side of an attempt: its cursor moves past a delivered (or refused)
    event; a failure starts or continues a failing streak, which past ``failing_after_s``
    marks the subscription ``failing`` (no further attempts until resumed)."""
    if cursor is not None and cursor > sub.cursor:
        sub.cursor = cursor
    sub.last_attempt_at = attempt.at
    sub.last_status_code = attempt.status_code
    sub.last_error = attempt.error
    sub.next_attempt_at = next_attempt_at
    if attempt.outcome == "delivered":
        sub.failing_since = None
        sub.last_success_at = attempt.at
    else:
        if sub.failing_since is None:
            sub.failing_since = attempt.at
        if (attempt.at - sub.failing_since).total_seconds() >= failing_after_s:
            sub.state = FAILING
            sub.next_attempt_at = None


def note_error(session: Session, sub_id: str, message: str) -> None:
    """Show why nothing could be attempted (the server's key) on the subscription."""
    sub = session.get(WebhookSubscription, sub_id)
    if sub is not None and sub.last_error != message:
        sub.last_error = message


def failing_subscriptions(session: Session, org_id: str) -> list[WebhookSubscription]:
    return list(
        session.scalars(
            select(WebhookSubscription).where(
                WebhookSubscription.org_id == org_id, WebhookSubscription.state == FAILING
            )
        )
    )


def rotate_webhook_secrets(session: Session, box: SecretBox) -> tuple[int, int]:
    """Re-encrypt every signing secret under the current key: (rotated, already current).
    Raises SecretKeyError when one opens with none of the keys (the caller rolls back)."""
    rotated = current = 0
    for sub in session.scalars(select(WebhookSubscription).with_for_update()):
        if box.is_current(sub.secret_sealed):
            current += 1
            continue
        sub.secret_sealed = box.rotate(sub.secret_sealed)
        rotated += 1
    session.flush()
    return rotated, current


def subscriptions_with_redeliveries(session: Session) -> list[tuple[str, str]]:
    """``(subscription id, org id)`` of active subscriptions with a redelivery waiting."""
    rows = session.execute(
        select(WebhookSubscription.id, WebhookSubscription.org_id)
        .join(WebhookDelivery, WebhookDelivery.subscription_id == WebhookSubscription.id)
        .where(WebhookDelivery.redeliver == 1, WebhookSubscription.state == ACTIVE)
        .distinct()
    )
    return [(r.id, r.org_id) for r in rows]


def _when(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")


def subscription_json(sub: WebhookSubscription, last_seq: int) -> dict[str, Any]:
    """A subscription as the API and the CLI show it (never its secret). ``backlog``:
    events in the log past its cursor (of every type)."""
    return {
        "id": sub.id,
        "org_id": sub.org_id,
        "url": sub.url,
        "events": list(sub.event_types or []),
        "description": sub.description,
        "state": sub.state,
        "cursor": sub.cursor,
        "backlog": max(0, last_seq - int(sub.cursor)),
        "created_at": _when(sub.created_at),
        "last_attempt_at": _when(sub.last_attempt_at),
        "last_success_at": _when(sub.last_success_at),
        "last_status_code": sub.last_status_code,
        "last_error": sub.last_error,
        "failing_since": _when(sub.failing_since),
        "next_attempt_at": _when(sub.next_attempt_at),
    }


def delivery_json(d: WebhookDelivery) -> dict[str, Any]:
    return {
        "event_id": d.event_id,
        "sequence": d.seq,
        "type": d.event_type,
        "status": d.status,
        "attempts": d.attempts,
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "first_attempt_at": _when(d.first_attempt_at),
        "last_attempt_at": _when(d.last_attempt_at),
        "delivered_at": _when(d.delivered_at),
        "redelivery_pending": bool(d.redeliver),
    }
