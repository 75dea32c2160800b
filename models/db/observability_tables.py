"""Layer: store. Tables that record how sync went: the SCIM request log and the IdP pull runs
(migration 0005; read by sync status, ``idsync scim log`` and the admin API)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.db.base import Base, UTCDateTime, utcnow


class ScimRequestLog(Base):
    """One SCIM request as idsync answered it: who sent it (token, IdP), what (method,
    route template, path, query, redacted body), how it ended (status, ``scimType``,
    detail, duration) and the change revision it produced. Bodies are redacted before
    they are stored (``idsync.scim_log.redaction``) and cut at a size limit."""

    __tablename__ = "scim_request_log"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    org_id: Mapped[str | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), nullable=True
    )
    token_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    method: Mapped[str] = mapped_column(String(8))
    route: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(512))
    query: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[int] = mapped_column(Integer)
    scim_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    duration_ms: Mapped[float] = mapped_column(Float)
    idp: Mapped[str] = mapped_column(String(32))
    user_agent: Mapped[str] = mapped_column(String(256), default="")
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    resource_type: Mapped[str | None] = mapped_column(String(16), nullable=True)
    resource_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    revision: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    body: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        Index(None, "org_id", "at"),
        Index(None, "org_id", "token_id", "at"),
        Index(None, "org_id", "resource_id"),
        Index(None, "at"),
    )


class IdpPullRun(Base):
    """One run of an IdP pull: when, how it ended, what it changed, why it failed.

    ``connection`` names the upstream: an ``idp_connections`` id, or "env" (the one set
    by IDSYNC_IDP_* environment variables). A dry run (``dry_run``) counts what the
    pull would change and writes nothing else. Rows are pruned after
    ``IDSYNC_IDP_RUN_RETENTION_DAYS`` (migration 0006 added the membership counts, the
    dry-run flag and the age index)."""

    __tablename__ = "idp_pull_runs"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    connection: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # running, ok, failed
    upstream_users: Mapped[int] = mapped_column(Integer, default=0)
    upstream_groups: Mapped[int] = mapped_column(Integer, default=0)
    users_created: Mapped[int] = mapped_column(Integer, default=0)
    users_updated: Mapped[int] = mapped_column(Integer, default=0)
    users_deactivated: Mapped[int] = mapped_column(Integer, default=0)
    groups_created: Mapped[int] = mapped_column(Integer, default=0)
    groups_updated: Mapped[int] = mapped_column(Integer, default=0)
    members_added: Mapped[int] = mapped_column(Integer, default=0)
    members_removed: Mapped[int] = mapped_column(Integer, default=0)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    upstream_status: Mapped[int | None] = mapped_column(Integer, nullable=True)

    __table_args__ = (Index(None, "org_id", "connection", "started_at"), Index(None, "started_at"))
