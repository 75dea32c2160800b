"""Layer: store. Organizations and their SCIM bearer tokens (stored hashed; see
credential_store)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from models.credentials import SCIM_TOKEN_PREFIX
from models.db.credential_store import LAST_USED_RESOLUTION, CredentialStore, Verified
from models.db.tables import Organization, ScimToken

__all__ = [
    "LAST_USED_RESOLUTION",
    "TokenIdentity",
    "create_scim_token",
    "get_or_create_org",
    "list_tokens",
    "revoke_token",
    "touch_token",
    "verify_scim_token",
]

_STORE: CredentialStore[ScimToken] = CredentialStore(ScimToken, "token_hash", SCIM_TOKEN_PREFIX)


class TokenIdentity(Verified):
    """Who a verified SCIM token speaks for."""

    @property
    def token_id(self) -> str:
        return self.credential_id


def get_or_create_org(session: Session, name: str) -> Organization:
    org = session.scalar(select(Organization).where(Organization.name == name))
    if org is None:
        org = Organization(name=name)
        session.add(org)
        session.flush()
    return org


def create_scim_token(session: Session, org: Organization, description: str = "") -> str:
    """Create a token for `org`; returns the plaintext, which is never stored."""
    return _STORE.create(session, org, description)


def _as_token(found: Verified | None) -> TokenIdentity | None:
    if found is None:
        return None
    return TokenIdentity(found.credential_id, found.org_id, found.org_name, found.last_used_at)


def verify_scim_token(session: Session | Connection, presented: str) -> TokenIdentity | None:
    """The identity behind a presented token, or None (unknown or revoked)."""
    return _as_token(_STORE.verify(session, presented))


def touch_token(session: Session, token_id: str, now: datetime | None = None) -> None:
    """Record use, at most once per LAST_USED_RESOLUTION (keeps the hot path read-only)."""
    _STORE.touch(session, token_id, now)


def list_tokens(session: Session, org_name: str | None = None) -> list[tuple[ScimToken, str]]:
    return _STORE.list(session, org_name)


def revoke_token(session: Session, token_id_or_prefix: str) -> int:
    """Revoke by id or display prefix; returns how many tokens were revoked."""
    return _STORE.revoke(session, token_id_or_prefix)
