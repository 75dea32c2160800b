"""Layer: store. IdP connections: per organization, the upstream directories idsync pulls from
(migration 0006; managed by the admin API, ``idsync connection`` and the declarative file;
run by the worker, ``worker.idp.connections``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.db.base import Base, UTCDateTime, new_id, utcnow


class IdpConnection(Base):
    """One upstream directory of one organization.

    ``secret_enc`` is the credential (SCIM bearer token, Okta API token, Graph client
    secret) encrypted with ``IDSYNC_SECRET_KEY`` (``models.secret_box``); it is never
    returned by the API. ``lease_until``/``lease_owner`` are the connection's own lock:
    a run takes it with one conditional UPDATE, so a connection never runs twice at once
    and no lock is shared between connections."""

    __tablename__ = "idp_connections"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))  # scim, okta, graph
    url: Mapped[str] = mapped_column(String(1024))
    client_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    token_url: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    scope: Mapped[str | None] = mapped_column(String(256), nullable=True)
    secret_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    interval_s: Mapped[int] = mapped_column(Integer, default=900)
    deactivate_missing: Mapped[bool] = mapped_column(Boolean, default=False)
    rate_limit_per_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("org_id", "name"),
        Index(None, "enabled", "next_run_at"),
    )
