"""Layer: store. Hashed bearer credentials (SCIM tokens, admin API keys): one implementation.

A credential is a 256-bit random secret with a kind prefix; only its SHA-256 and a short
display prefix are stored. Verification looks the hash up through a unique index with a
statement built once (it runs on every request), then compares in constant time.
Revocation takes effect on the next verification (the SCIM API remembers a verified
token for a short window: `models.credential_cache`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import Connection, Table, bindparam, or_, select
from sqlalchemy.orm import Session

from models.credentials import display_prefix, generate_secret, hash_secret, same_hash
from models.db.base import Base, utcnow
from models.db.tables import Organization

LAST_USED_RESOLUTION = timedelta(minutes=1)
_ORGS = cast(Table, Organization.__table__)


# An ORM class with id, org_id, prefix, description, created_at, last_used_at, revoked_at
# and the hash column named at construction (ScimToken, AdminKey).
Row = TypeVar("Row", bound=Base)


@dataclass(frozen=True)
class Verified:
    """Who a verified credential speaks for."""

    credential_id: str
    org_id: str
    org_name: str
    last_used_at: datetime | None = None

    def use_is_stale(self, now: datetime | None = None) -> bool:
        """Whether `last_used_at` is older than LAST_USED_RESOLUTION (worth a write)."""
        now = now or utcnow()
        return self.last_used_at is None or now - self.last_used_at >= LAST_USED_RESOLUTION


class CredentialStore(Generic[Row]):
    """Create, verify, record use of, list and revoke one kind of credential."""

    def __init__(self, model: type[Row], hash_column: str, kind_prefix: str) -> None:
        self.model = model
        self.hash_column = hash_column
        self.kind_prefix = kind_prefix
        table = cast(Table, cast(Any, model).__table__)
        self._verify = (
            select(
                table.c.id,
                table.c.org_id,
                table.c[hash_column],
                table.c.revoked_at,
                table.c.last_used_at,
                _ORGS.c.name,
            )
            .join_from(table, _ORGS, _ORGS.c.id == table.c.org_id)
            .where(table.c[hash_column] == bindparam("digest"))
        )

    def create(self, session: Session, org: Organization, description: str = "") -> str:
        """A new credential for `org`; returns the plaintext, which is never stored."""
        secret = generate_secret(self.kind_prefix)
        row = cast(Any, self.model)(
            org_id=org.id, prefix=display_prefix(secret), description=description
        )
        setattr(row, self.hash_column, hash_secret(secret))
        session.add(row)
        session.flush()
        return secret

    def verify_params(self, presented: str) -> dict[str, str] | None:
        """The binds of the lookup `verify` runs; None when `presented` is not of this kind."""
        if not presented.startswith(self.kind_prefix):
            return None
        return {"digest": hash_secret(presented)}

    @staticmethod
    def identity(found: Sequence[Any] | None, presented: str) -> Verified | None:
        """The identity in `found` (a row of the lookup `verify` runs, or None), or None when
        the credential is unknown or revoked; the hash is compared in constant time."""
        if found is None:
            return None
        credential_id, org_id, stored_hash, revoked_at, last_used_at, org_name = found
        if revoked_at is not None or not same_hash(stored_hash, presented):
            return None
        return Verified(credential_id, org_id, org_name, last_used_at)

    def verify(self, session: Session | Connection, presented: str) -> Verified | None:
        """The identity behind `presented`, or None (unknown, revoked, another kind)."""
        params = self.verify_params(presented)
        if params is None:
            return None
        return self.identity(session.execute(self._verify, params).first(), presented)

    def touch(self, session: Session, credential_id: str, now: datetime | None = None) -> None:
        """Record use, at most once per LAST_USED_RESOLUTION (the hot path stays read-only)."""
        now = now or utcnow()
        row: Any = session.get(self.model, credential_id)
        if row is not None and (
            row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION
        ):
            row.last_used_at = now

    def list(self, session: Session, org_name: str | None = None) -> list[tuple[Row, str]]:
        model = cast(Any, self.model)
        query = select(model, Organization.name).join(Organization, Organization.id == model.org_id)
        if org_name is not None:
            query = query.where(Organization.name == org_name)
        return [(r, n) for r, n in session.execute(query.order_by(model.created_at)).all()]

    def revoke(self, session: Session, id_or_prefix: str) -> int:
        """Revoke by id or display prefix; returns how many were revoked."""
        model = cast(Any, self.model)
        rows = session.scalars(
            select(model).where(or_(model.id == id_or_prefix, model.prefix == id_or_prefix))
        ).all()
        count = 0
        for found in rows:
            row: Any = found
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                count += 1
        return count
