"""Organizations and their SCIM bearer tokens (stored hashed)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session

from models.credentials import (
    SCIM_TOKEN_PREFIX,
    display_prefix,
    generate_secret,
    hash_secret,
    same_hash,
)
from models.db.base import utcnow
from models.db.tables import Organization, ScimToken

LAST_USED_RESOLUTION = timedelta(minutes=1)
_TOKENS = cast(Table, ScimToken.__table__)
_ORGS = cast(Table, Organization.__table__)
_VERIFY = (
    select(
        _TOKENS.c.id,
        _TOKENS.c.org_id,
        _TOKENS.c.token_hash,
        _TOKENS.c.revoked_at,
        _TOKENS.c.last_used_at,
        _ORGS.c.name,
    )
    .join_from(_TOKENS, _ORGS, _ORGS.c.id == _TOKENS.c.org_id)
    .where(_TOKENS.c.token_hash == bindparam("digest"))
)


@dataclass(frozen=True)
class TokenIdentity:
    """Who a verified bearer token speaks for."""

    token_id: str
    org_id: str
    org_name: str
    last_used_at: datetime | None = None

    def use_is_stale(self, now: datetime | None = None) -> bool:
        """Whether `last_used_at` is older than LAST_USED_RESOLUTION (worth a write)."""
        now = now or utcnow()
        return self.last_used_at is None or now - self.last_used_at >= LAST_USED_RESOLUTION


def get_or_create_org(session: Session, name: str) -> Organization:
    org = session.scalar(select(Organization).where(Organization.name == name))
    if org is None:
        org = Organization(name=name)
        session.add(org)
        session.flush()
    return org


def create_scim_token(session: Session, org: Organization, description: str = "") -> str:
    """Create a token for `org`; returns the plaintext, which is never stored."""
    secret = generate_secret(SCIM_TOKEN_PREFIX)
    session.add(
        ScimToken(
            org_id=org.id,
            token_hash=hash_secret(secret),
            prefix=display_prefix(secret),
            description=description,
        )
    )
    session.flush()
    return secret


def verify_scim_token(session: Session, presented: str) -> TokenIdentity | None:
    """The identity behind a presented token, or None (unknown or revoked)."""
    digest = hash_secret(presented)
    # Plain columns from a statement built once: this runs on every request.
    row = session.execute(_VERIFY, {"digest": digest}).first()
    if row is None:
        return None
    token_id, org_id, stored_hash, revoked_at, last_used_at, org_name = row
    if revoked_at is not None or not same_hash(stored_hash, presented):
        return None
    return TokenIdentity(token_id, org_id, org_name, last_used_at)


def touch_token(session: Session, token_id: str, now: datetime | None = None) -> None:
    """Record use, at most once per LAST_USED_RESOLUTION (keeps the hot path read-only)."""
    now = now or utcnow()
    token = session.get(ScimToken, token_id)
    if token is not None and (
        token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION
    ):
        token.last_used_at = now


def list_tokens(session: Session, org_name: str | None = None) -> list[tuple[ScimToken, str]]:
    query = select(ScimToken, Organization.name).join(
        Organization, Organization.id == ScimToken.org_id
    )
    if org_name is not None:
        query = query.where(Organization.name == org_name)
    return [(t, n) for t, n in session.execute(query.order_by(ScimToken.created_at)).all()]


def revoke_token(session: Session, token_id_or_prefix: str) -> int:
    """Revoke by id or display prefix; returns how many tokens were revoked."""
    tokens = session.scalars(
        select(ScimToken).where(
            (ScimToken.id == token_id_or_prefix) | (ScimToken.prefix == token_id_or_prefix)
        )
    ).all()
    count = 0
    for token in tokens:
        if token.revoked_at is None:
            token.revoked_at = utcnow()
            count += 1
    return count
