"""Layer: store. Access configuration tables: workspaces, Spaces, custom roles, bindings,
subset categories, registered resources, mapping rules, organization admin API keys.

Design notes:
- Configuration objects (workspaces, Spaces, custom roles, mapping rules) have
  string ids chosen by the administrator (slugs such as ``marketing``) or generated
  UUIDs; they are unique per organization, so every primary key is
  ``(org_id, id)`` and every reference between configuration tables is a composite
  foreign key that includes ``org_id``: the database itself refuses a Space or a
  binding pointing into another organization's workspace. Space ids are unique per
  workspace (two workspaces may both have a Space ``UK``): a Space's key is
  ``(org_id, workspace_id, id)`` and a Space assignment names all three.
- Built-in roles live in ``models.access`` (data, not rows); a binding's ``role_id``
  is therefore not a foreign key and is validated by the store on write.
- Bindings carry ``source``: ``"manual"`` (``models.access.MANUAL``) or the id of the
  mapping rule that produced them. Rules only ever replace rows whose source is a
  rule id; manual rows are never touched by rule application.
- Bindings reference SCIM groups by id with ``ON DELETE CASCADE``: a group deleted
  over SCIM takes its bindings with it (the SCIM ``group.deleted`` change row already
  names the group's former members).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import InstrumentedAttribute, Mapped, mapped_column

from models.db.base import Base, CredentialColumns, JSONDoc, UTCDateTime, new_id, utcnow

CONFIG_ID_LEN = 36
"""Configuration ids (workspace, Space, role, rule) are at most this long (a UUID fits)."""
EXTERNAL_ID_LEN = 255
"""Platform resource ids (sources, destinations, parent models…)."""


def _org_fk() -> Any:
    return ForeignKey("organizations.id", ondelete="CASCADE")


class ConfigWorkspace(Base):
    """A workspace, or an environment of ``parent_workspace_id``."""

    __tablename__ = "workspaces"

    org_id: Mapped[str] = mapped_column(_org_fk(), primary_key=True)
    id: Mapped[str] = mapped_column(String(CONFIG_ID_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    permissions_model: Mapped[str] = mapped_column(String(16), default="v2")
    spaces_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    approvals_required: Mapped[bool] = mapped_column(Boolean, default=False)
    parent_workspace_id: Mapped[str | None] = mapped_column(String(CONFIG_ID_LEN), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "parent_workspace_id"],
            ["workspaces.org_id", "workspaces.id"],
            name="fk_workspaces_parent",
        ),
    )


class ConfigSpace(Base):
    """A Space inside a workspace (ids unique per workspace)."""

    __tablename__ = "spaces"

    org_id: Mapped[str] = mapped_column(_org_fk(), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(CONFIG_ID_LEN), primary_key=True)
    id: Mapped[str] = mapped_column(String(CONFIG_ID_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "workspace_id"],
            ["workspaces.org_id", "workspaces.id"],
            name="fk_spaces_workspace",
            ondelete="CASCADE",
        ),
    )


class CustomRole(Base):
    """A custom role; ``definition`` is validated by ``models.access`` on write.

    v2: ``{"workspace_grants": [...], "resource_grants": [...]}``;
    legacy: ``{"statements": [...]}``.
    """

    __tablename__ = "custom_roles"

    org_id: Mapped[str] = mapped_column(_org_fk(), primary_key=True)
    id: Mapped[str] = mapped_column(String(CONFIG_ID_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(16))
    definition: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OrgAdminBindingRow(Base):
    """Group ``group_id`` is organization admin (workspace admin everywhere)."""

    __tablename__ = "org_admin_bindings"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(_org_fk())
    group_id: Mapped[str] = mapped_column(ForeignKey("scim_groups.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(CONFIG_ID_LEN))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("org_id", "group_id", "source"),
        Index(None, "group_id"),
    )


class RoleBindingRow(Base):
    """Group ``group_id`` holds role ``role_id`` in workspace ``workspace_id``."""

    __tablename__ = "role_bindings"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(_org_fk())
    group_id: Mapped[str] = mapped_column(ForeignKey("scim_groups.id", ondelete="CASCADE"))
    workspace_id: Mapped[str] = mapped_column(String(CONFIG_ID_LEN))
    role_id: Mapped[str] = mapped_column(String(CONFIG_ID_LEN))
    source: Mapped[str] = mapped_column(String(CONFIG_ID_LEN))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "workspace_id"],
            ["workspaces.org_id", "workspaces.id"],
            name="fk_role_bindings_workspace",
            ondelete="CASCADE",
        ),
        UniqueConstraint("group_id", "workspace_id", "role_id", "source"),
        Index(None, "org_id", "workspace_id"),
        Index(None, "org_id", "role_id"),
    )


class SpaceAssignmentRow(Base):
    """Group ``group_id`` is assigned to Space ``space_id`` of workspace ``workspace_id``."""

    __tablename__ = "space_assignments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(_org_fk())
    group_id: Mapped[str] = mapped_column(ForeignKey("scim_groups.id", ondelete="CASCADE"))
    workspace_id: Mapped[str] = mapped_column(String(CONFIG_ID_LEN))
    space_id: Mapped[str] = mapped_column(String(CONFIG_ID_LEN))
    source: Mapped[str] = mapped_column(String(CONFIG_ID_LEN))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "workspace_id", "space_id"],
            ["spaces.org_id", "spaces.workspace_id", "spaces.id"],
            name="fk_space_assignments_space",
            ondelete="CASCADE",
        ),
        UniqueConstraint("group_id", "workspace_id", "space_id", "source"),
        Index(None, "org_id", "workspace_id", "space_id"),
    )


_Column = InstrumentedAttribute[str]


def binding_key(
    table: type[RoleBindingRow] | type[SpaceAssignmentRow],
) -> tuple[_Column, _Column, _Column, _Column]:
    """The columns that tell a role binding or Space assignment apart (its unique
    constraint): group, workspace, the role or Space bound, source."""
    target = RoleBindingRow.role_id if table is RoleBindingRow else SpaceAssignmentRow.space_id
    return (table.group_id, table.workspace_id, target, table.source)


class SubsetCategoryRow(Base):
    """A subset category (``region``, ``consent``…) of a parent model in a workspace."""

    __tablename__ = "subset_categories"

    org_id: Mapped[str] = mapped_column(_org_fk(), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(CONFIG_ID_LEN), primary_key=True)
    parent_model_id: Mapped[str] = mapped_column(String(EXTERNAL_ID_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    required: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "workspace_id"],
            ["workspaces.org_id", "workspaces.id"],
            name="fk_subset_categories_workspace",
            ondelete="CASCADE",
        ),
    )


class RegisteredResourceRow(Base):
    """A platform resource whose labels idsync knows (legacy label conditions)."""

    __tablename__ = "registered_resources"

    org_id: Mapped[str] = mapped_column(_org_fk(), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(CONFIG_ID_LEN), primary_key=True)
    type: Mapped[str] = mapped_column(String(32), primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(EXTERNAL_ID_LEN), primary_key=True)
    labels: Mapped[dict[str, str]] = mapped_column(JSONDoc, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "workspace_id"],
            ["workspaces.org_id", "workspaces.id"],
            name="fk_registered_resources_workspace",
            ondelete="CASCADE",
        ),
    )


class MappingRuleRow(Base):
    """A mapping rule (``models.access.mapping_rules.MappingRule``): match SCIM groups by
    ``attribute`` (``externalId``/``displayName``) with ``match`` (exact, prefix, RE2 regex)
    and produce bindings of ``kind`` (workspace_role, space, org_admin). ``workspace``,
    ``role`` and ``space`` are fixed targets (id or name); None: taken from the regex's
    named capture of the same name. Rules apply in ``position`` order, then id."""

    __tablename__ = "mapping_rules"

    org_id: Mapped[str] = mapped_column(_org_fk(), primary_key=True)
    id: Mapped[str] = mapped_column(String(CONFIG_ID_LEN), primary_key=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    attribute: Mapped[str] = mapped_column(String(16))
    match: Mapped[str] = mapped_column(String(16))
    pattern: Mapped[str] = mapped_column(Text)
    ignore_case: Mapped[bool] = mapped_column(Boolean, default=False)
    kind: Mapped[str] = mapped_column(String(16))
    workspace: Mapped[str | None] = mapped_column(String(200), nullable=True)
    role: Mapped[str | None] = mapped_column(String(200), nullable=True)
    space: Mapped[str | None] = mapped_column(String(200), nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AdminKey(CredentialColumns, Base):
    """An organization admin API key; only its SHA-256 is stored."""

    __tablename__ = "admin_keys"

    key_hash: Mapped[str] = mapped_column(String(64), unique=True)

    __table_args__ = (Index(None, "org_id"),)
