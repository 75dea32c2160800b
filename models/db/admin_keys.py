"""Layer: store. Organization admin API keys (stored hashed; strictly scoped to one organization).

The same credential mechanism as SCIM tokens (`models.db.credential_store`): 256-bit
random secrets, SHA-256 at rest, a short display prefix, revocation by id or prefix.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from models.credentials import ADMIN_KEY_PREFIX
from models.db.config_tables import AdminKey
from models.db.credential_store import LAST_USED_RESOLUTION, CredentialStore, Verified
from models.db.tables import Organization

__all__ = [
    "LAST_USED_RESOLUTION",
    "AdminIdentity",
    "admin_key_in_force",
    "create_admin_key",
    "list_admin_keys",
    "revoke_admin_key",
    "touch_admin_key",
    "verify_admin_key",
]

_STORE: CredentialStore[AdminKey] = CredentialStore(AdminKey, "key_hash", ADMIN_KEY_PREFIX)


class AdminIdentity(Verified):
    """Who a verified admin key speaks for."""

    @property
    def key_id(self) -> str:
        return self.credential_id

    @property
    def actor(self) -> str:
        return f"admin-key:{self.key_id}"


def create_admin_key(session: Session, org: Organization, description: str = "") -> str:
    """Create a key for ``org``; returns the plaintext, which is never stored."""
    return _STORE.create(session, org, description)


def verify_admin_key(session: Session, presented: str) -> AdminIdentity | None:
    """The identity behind a presented key, or None (unknown, revoked, not an admin key)."""
    found = _STORE.verify(session, presented)
    if found is None:
        return None
    return AdminIdentity(found.credential_id, found.org_id, found.org_name, found.last_used_at)


def admin_key_in_force(session: Session, key_id: str, org_id: str) -> bool:
    """Whether key ``key_id`` of ``org_id`` exists and is not revoked (a console session
    made with a key ends when the key is revoked)."""
    row = session.get(AdminKey, key_id)
    return row is not None and row.org_id == org_id and row.revoked_at is None


def touch_admin_key(session: Session, key_id: str, now: datetime | None = None) -> None:
    """Record use, at most once per LAST_USED_RESOLUTION."""
    _STORE.touch(session, key_id, now)


def list_admin_keys(session: Session, org_name: str | None = None) -> list[tuple[AdminKey, str]]:
    return _STORE.list(session, org_name)


def revoke_admin_key(session: Session, key_id_or_prefix: str) -> int:
    """Revoke by id or display prefix; returns how many keys were revoked."""
    return _STORE.revoke(session, key_id_or_prefix)
