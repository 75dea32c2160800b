"""Layer: store. Identity tables: organizations, SCIM tokens, users, groups, memberships,
change log.

Design notes (see docs/architecture.md of the project):
- SCIM resources keep their full document in `attrs` (JSONB on PostgreSQL); the
  attributes that are looked up or sorted on often also have their own indexed columns
  (`user_name_norm`, `external_id`, `display_name_norm`, `active`, timestamps).
- Group membership is a table, never a JSON list, so that single-member PATCHes and
  reads with `excludedAttributes=members` never touch the member list.
- `organizations.revision` is the per-organization change counter: a writer bumps it
  with `UPDATE … RETURNING` as the last statement of its transaction, which also takes
  the row lock, so commit order equals revision order within an organization.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.db.base import Base, CredentialColumns, JSONDoc, UTCDateTime, new_id, utcnow


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    revision: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ScimToken(CredentialColumns, Base):
    """A SCIM bearer token; only its SHA-256 is stored."""

    __tablename__ = "scim_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), unique=True)

    __table_args__ = (Index(None, "org_id"),)


class User(Base):
    __tablename__ = "scim_users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    user_name: Mapped[str] = mapped_column(String(512))
    user_name_norm: Mapped[str] = mapped_column(String(512))
    external_id: Mapped[str | None] = mapped_column(String(512), nullable=True)
    display_name: Mapped[str | None] = mapped_column(String(512), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    attrs: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("org_id", "user_name_norm"),
        Index(None, "org_id", "external_id"),
        # The default order, with `active` so that `active eq true` pages and their
        # COUNT read this index alone (migration 0003).
        Index(None, "org_id", "created_at", "id", "active"),
        Index(None, "org_id", "updated_at"),
    )


class Group(Base):
    __tablename__ = "scim_groups"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    display_name: Mapped[str] = mapped_column(String(512))
    display_name_norm: Mapped[str] = mapped_column(String(512))
    external_id: Mapped[str | None] = mapped_column(String(512), nullable=True)
    attrs: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("org_id", "display_name_norm"),
        Index(None, "org_id", "external_id"),
        Index(None, "org_id", "created_at", "id"),
    )


class GroupMember(Base):
    """User `user_id` is a direct member of group `group_id` (no nested groups)."""

    __tablename__ = "scim_group_members"

    group_id: Mapped[str] = mapped_column(
        ForeignKey("scim_groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("scim_users.id", ondelete="CASCADE"), primary_key=True
    )
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index(None, "user_id"),)


class Change(Base):
    """The change log: outbox for the worker and audit trail (who, what, when).

    One row per accepted write, in the write's own transaction. `revision` is the
    organization's revision after the write.
    """

    __tablename__ = "changes"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    revision: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(64))
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    user_ids: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    group_ids: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    # Members a group change took out (a subset of user_ids; migration 0007): the events
    # tell membership added from removed by it. NULL on rows written before 0007.
    revoked_user_ids: Mapped[list[str] | None] = mapped_column(JSONDoc, nullable=True)
    actor: Mapped[str] = mapped_column(String(128))
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    summary: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("org_id", "revision"),
        Index(None, "org_id", "created_at"),
    )
