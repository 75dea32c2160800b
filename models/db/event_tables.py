"""Layer: store. Tables of the events feature (docs/events.md): the event log derived from the
change log, its per-organization cursor, the permission state the "effective permissions
changed" events are diffed against, webhook subscriptions and their delivery log
(migration 0007)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.db.base import Base, JSONDoc, UTCDateTime, new_id, utcnow

_ID = BigInteger().with_variant(Integer, "sqlite")


class Event(Base):
    """One event, derived from committed change rows (never from a request): ``seq`` is
    its position in the organization's log (1, 2, …; the API's cursor and the delivery
    order), ``event_id`` its stable id (the same on every delivery), ``revision`` the
    change revision it belongs to (non-decreasing along ``seq``)."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    revision: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    data: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("org_id", "seq"),)


class EventCursor(Base):
    """How far the organization's change log has been turned into events."""

    __tablename__ = "event_cursors"

    org_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    revision: Mapped[int] = mapped_column(BigInteger, default=0)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)


class PermissionState(Base):
    """A user's effective permissions as last announced: ``{workspace: {part: [items]}}``."""

    __tablename__ = "event_permission_state"

    org_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    permissions: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    revision: Mapped[int] = mapped_column(BigInteger, default=0)


class WebhookSubscription(Base):
    """Where an organization's events are POSTed. ``secret_sealed``: the signing secret,
    encrypted (it signs, so it cannot be hashed). ``cursor``: the ``seq`` of the last event
    handled (delivered, or refused with a 4xx). ``state``: ``active`` or ``failing`` (failed
    without a success for longer than ``IDSYNC_WEBHOOK_FAILING_AFTER_S``: no more attempts
    until resumed)."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text)
    event_types: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    secret_sealed: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[str] = mapped_column(String(16), default="active")
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index(None, "org_id"),)


class WebhookDelivery(Base):
    """One event's delivery to one subscription: ``status`` ``retrying``, ``delivered`` or
    ``failed`` (a 4xx other than 429), the attempts made and the last response code;
    ``redeliver`` 1 while an operator's redelivery waits."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    subscription_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE")
    )
    org_id: Mapped[str] = mapped_column(String(36))
    seq: Mapped[int] = mapped_column(BigInteger)
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    redeliver: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    first_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        UniqueConstraint("subscription_id", "seq"),
        Index(None, "subscription_id", "redeliver"),
    )
