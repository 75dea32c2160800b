"""Organization admin API keys (stored hashed; strictly scoped to one organization).

Mirrors ``models.db.tokens`` (SCIM tokens): 256-bit random secrets, SHA-256 at rest,
a short display prefix for listings, revocation by id or prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.credentials import (
    ADMIN_KEY_PREFIX,
    display_prefix,
    generate_secret,
    hash_secret,
    same_hash,
)
from models.db.base import utcnow
from models.db.config_tables import AdminKey
from models.db.tables import Organization

LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class AdminIdentity:
    """Who a verified admin key speaks for."""

    key_id: str
    org_id: str
    org_name: str

    @property
    def actor(self) -> str:
        return f"admin-key:{self.key_id}"


def create_admin_key(session: Session, org: Organization, description: str = "") -> str:
    """Create a key for ``org``; returns the plaintext, which is never stored."""
    secret = generate_secret(ADMIN_KEY_PREFIX)
    session.add(
        AdminKey(
            org_id=org.id,
            key_hash=hash_secret(secret),
            prefix=display_prefix(secret),
            description=description,
        )
    )
    session.flush()
    return secret


def verify_admin_key(session: Session, presented: str) -> AdminIdentity | None:
    """The identity behind a presented key, or None (unknown, revoked, not an admin key)."""
    if not presented.startswith(ADMIN_KEY_PREFIX):
        return None
    row = session.execute(
        select(AdminKey, Organization.name)
        .join(Organization, Organization.id == AdminKey.org_id)
        .where(AdminKey.key_hash == hash_secret(presented))
    ).first()
    if row is None:
        return None
    key, org_name = row
    if key.revoked_at is not None or not same_hash(key.key_hash, presented):
        return None
    return AdminIdentity(key.id, key.org_id, org_name)


def touch_admin_key(session: Session, key_id: str, now: datetime | None = None) -> None:
    """Record use, at most once per LAST_USED_RESOLUTION."""
    now = now or utcnow()
    key = session.get(AdminKey, key_id)
    if key is not None and (
        key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION
    ):
        key.last_used_at = now


def list_admin_keys(session: Session, org_name: str | None = None) -> list[tuple[AdminKey, str]]:
    query = select(AdminKey, Organization.name).join(
        Organization, Organization.id == AdminKey.org_id
    )
    if org_name is not None:
        query = query.where(Organization.name == org_name)
    return [(k, n) for k, n in session.execute(query.order_by(AdminKey.created_at)).all()]


def revoke_admin_key(session: Session, key_id_or_prefix: str) -> int:
    """Revoke by id or display prefix; returns how many keys were revoked."""
    keys = session.scalars(
        select(AdminKey).where(
            (AdminKey.id == key_id_or_prefix) | (AdminKey.prefix == key_id_or_prefix)
        )
    ).all()
    count = 0
    for key in keys:
        if key.revoked_at is None:
            key.revoked_at = utcnow()
            count += 1
    return count
