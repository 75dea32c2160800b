"""Layer: store. IdP connections of an organization: create, read, change, remove; the
credential encrypted on the way in (``models.secret_box``) and never part of a view; the
per-connection lease; which connections are due; key rotation.

Every function that takes ``org_id`` scopes its query to it (the admin API passes the
key's organization); ``org_id=None`` is the operator's view (the CLI), all organizations.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from models.db.base import new_id, utcnow
from models.db.config_errors import ConfigError, ConflictError, NotFoundError
from models.db.connection_tables import IdpConnection
from models.db.tables import Organization
from models.secret_box import SecretBox

KINDS: Final = ("scim", "okta", "graph")
GRAPH_URL: Final = "https://graph.microsoft.com"
GRAPH_SCOPE: Final = "https://graph.microsoft.com/.default"
MIN_INTERVAL_S: Final = 5
DEFAULT_INTERVAL_S: Final = 900


@dataclass(frozen=True)
class ConnectionSpec:
    """What a connection is, as an operator writes it (no credential: that is passed on
    its own, in plain text, and stored encrypted)."""

    kind: str
    url: str
    name: str | None = None
    client_id: str | None = None
    token_url: str | None = None
    scope: str | None = None
    interval_s: int = DEFAULT_INTERVAL_S
    deactivate_missing: bool = False
    rate_limit_per_s: float | None = None
    enabled: bool = True

    def checked(self) -> ConnectionSpec:
        """The spec with defaults filled in; raises ConfigError naming the bad field."""
        if self.kind not in KINDS:
            raise ConfigError("kind", f"must be one of {', '.join(KINDS)}")
        url = self.url or (GRAPH_URL if self.kind == "graph" else "")
        for field_name, value in (("url", url), ("token_url", self.token_url)):
            if value is not None and (
                urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc
            ):
                raise ConfigError(field_name, "must be an http(s) URL")
        if self.kind == "graph":
            if not self.client_id:
                raise ConfigError("client_id", "a graph connection needs the client id")
            if not self.token_url:
                raise ConfigError("token_url", "a graph connection needs the OAuth token URL")
        if self.interval_s < MIN_INTERVAL_S:
            raise ConfigError("interval_s", f"must be at least {MIN_INTERVAL_S} seconds")
        if self.rate_limit_per_s is not None and self.rate_limit_per_s <= 0:
            raise ConfigError("rate_limit_per_s", "must be positive (or unset: no limit)")
        if self.name is not None and not (0 < len(self.name) <= 128):
            raise ConfigError("name", "1 to 128 characters")
        scope = self.scope or (GRAPH_SCOPE if self.kind == "graph" else None)
        return replace(self, url=url, scope=scope)


def spec_of(conn: IdpConnection) -> ConnectionSpec:
    """What the stored connection is (to change a few fields of it)."""
    return ConnectionSpec(**{f.name: getattr(conn, f.name) for f in fields(ConnectionSpec)})


def needs_secret(kind: str) -> bool:
    """okta and graph cannot read without a credential; a SCIM upstream may be open."""
    return kind in ("okta", "graph")


def _org_name(session: Session, org_id: str) -> str:
    return session.scalar(select(Organization.name).where(Organization.id == org_id)) or "?"


def view(session: Session, conn: IdpConnection) -> dict[str, Any]:
    """The connection as the API, the CLI and the declarative diff show it: never the
    credential, only whether one is stored."""
    return {
        "id": conn.id,
        "organization": _org_name(session, conn.org_id),
        "name": conn.name,
        "kind": conn.kind,
        "url": conn.url,
        "client_id": conn.client_id,
        "token_url": conn.token_url,
        "scope": conn.scope,
        "has_secret": conn.secret_enc is not None,
        "interval_s": conn.interval_s,
        "deactivate_missing": conn.deactivate_missing,
        "rate_limit_per_s": conn.rate_limit_per_s,
        "enabled": conn.enabled,
        "next_run_at": conn.next_run_at.isoformat(timespec="seconds") if conn.next_run_at else None,
        "running": conn.lease_until is not None and conn.lease_until > utcnow(),
        "created_at": conn.created_at.isoformat(timespec="seconds"),
    }


def get_connection(session: Session, org_id: str | None, conn_id: str) -> IdpConnection:
    query = select(IdpConnection).where(IdpConnection.id == conn_id)
    if org_id is not None:
        query = query.where(IdpConnection.org_id == org_id)
    conn = session.scalar(query)
    if conn is None:
        raise NotFoundError("connection", f"no connection {conn_id!r}")
    return conn


def list_connections(session: Session, org_id: str | None) -> list[IdpConnection]:
    query = select(IdpConnection).order_by(IdpConnection.org_id, IdpConnection.name)
    if org_id is not None:
        query = query.where(IdpConnection.org_id == org_id)
    return list(session.scalars(query))


def find_by_name(session: Session, org_id: str, name: str) -> IdpConnection | None:
    return session.scalar(
        select(IdpConnection).where(IdpConnection.org_id == org_id, IdpConnection.name == name)
    )


def create_connection(
    session: Session,
    org_id: str,
    spec: ConnectionSpec,
    secret: str | None,
    box: SecretBox | None,
) -> IdpConnection:
    """A new connection, due at once. ``box`` encrypts ``secret`` (needed when there is
    one: a missing key raises SecretKeyError before anything is written)."""
    spec = spec.checked()
    if needs_secret(spec.kind) and not secret:
        raise ConfigError("secret", f"a {spec.kind} connection needs its credential")
    conn = IdpConnection(id=new_id(), org_id=org_id, **_columns(spec))
    conn.name = spec.name or f"{spec.kind}-{conn.id[:8]}"
    if find_by_name(session, org_id, conn.name) is not None:
        raise ConflictError("name", f"the organization has a connection named {conn.name!r}")
    conn.secret_enc = _encrypt(secret, box)
    session.add(conn)
    session.flush()
    return conn


def update_connection(
    session: Session,
    conn: IdpConnection,
    spec: ConnectionSpec,
    secret: str | None,
    box: SecretBox | None,
) -> bool:
    """Make ``conn`` match ``spec`` (and ``secret`` when given); True when anything
    changed. A changed schedule makes the connection due at once."""
    spec = spec.checked()
    changed = False
    for name, value in _columns(spec).items():
        if name == "name" and value is None:
            continue
        if getattr(conn, name) != value:
            setattr(conn, name, value)
            changed = True
            if name == "interval_s":
                conn.next_run_at = None
    if secret is not None:
        assert box is not None
        if conn.secret_enc is None or box.decrypt(conn.secret_enc) != secret:
            conn.secret_enc = box.encrypt(secret)
            changed = True
    if needs_secret(conn.kind) and conn.secret_enc is None:
        raise ConfigError("secret", f"a {conn.kind} connection needs its credential")
    session.flush()
    return changed


def _columns(spec: ConnectionSpec) -> dict[str, Any]:
    return {f.name: getattr(spec, f.name) for f in fields(spec)}


def _encrypt(secret: str | None, box: SecretBox | None) -> str | None:
    if not secret:
        return None
    assert box is not None, "a credential needs the secret box"
    return box.encrypt(secret)


def remove_connection(session: Session, org_id: str | None, conn_id: str) -> None:
    session.delete(get_connection(session, org_id, conn_id))
    session.flush()


def reveal_secret(conn: IdpConnection, box: SecretBox | None) -> str | None:
    if conn.secret_enc is None:
        return None
    assert box is not None
    return box.decrypt(conn.secret_enc)


def rotate_secrets(session: Session, box: SecretBox) -> tuple[int, int]:
    """Re-encrypt every stored credential under the current key: (rotated, already
    current). Raises SecretKeyError, writing nothing, when a credential opens with none
    of the keys (the caller's transaction rolls back)."""
    rotated = current = 0
    for conn in session.scalars(
        select(IdpConnection).where(IdpConnection.secret_enc.is_not(None)).with_for_update()
    ):
        assert conn.secret_enc is not None
        if box.is_current(conn.secret_enc):
            current += 1
            continue
        conn.secret_enc = box.rotate(conn.secret_enc)
        rotated += 1
    session.flush()
    return rotated, current


# --- scheduling and the per-connection lease ---------------------------------------------


def claim_due(session: Session, now: datetime, limit: int = 500) -> list[str]:
    """Connections whose run is due, each moved to its next slot (``now + interval``) by a
    conditional UPDATE, so two dispatchers never both send one."""
    rows = session.execute(
        select(IdpConnection.id, IdpConnection.interval_s, IdpConnection.next_run_at)
        .where(
            IdpConnection.enabled.is_(True),
            or_(IdpConnection.next_run_at.is_(None), IdpConnection.next_run_at <= now),
        )
        .order_by(IdpConnection.next_run_at)
        .limit(limit)
    ).all()
    claimed = []
    for conn_id, interval_s, seen in rows:
        slot = (
            IdpConnection.next_run_at.is_(None)
            if seen is None
            else (IdpConnection.next_run_at == seen)
        )
        done = session.execute(
            update(IdpConnection)
            .where(IdpConnection.id == conn_id, slot)
            .values(next_run_at=now + timedelta(seconds=interval_s))
        )
        if done.rowcount == 1:  # type: ignore[attr-defined]
            claimed.append(conn_id)
    return claimed


def defer_run(session: Session, conn_id: str, until: datetime) -> None:
    """Move the connection's next run to ``until`` unless it is already later (the
    upstream's Retry-After outlasts what a run waits in place)."""
    session.execute(
        update(IdpConnection)
        .where(
            IdpConnection.id == conn_id,
            or_(IdpConnection.next_run_at.is_(None), IdpConnection.next_run_at < until),
        )
        .values(next_run_at=until)
    )


def take_lease(session: Session, conn_id: str, owner: str, seconds: float) -> bool:
    """The connection's lock: True when ``owner`` now holds it (nobody held it, or the
    holder's lease ran out: a killed run)."""
    now = utcnow()
    done = session.execute(
        update(IdpConnection)
        .where(
            IdpConnection.id == conn_id,
            or_(IdpConnection.lease_until.is_(None), IdpConnection.lease_until < now),
        )
        .values(lease_until=now + timedelta(seconds=seconds), lease_owner=owner)
    )
    return bool(done.rowcount == 1)  # type: ignore[attr-defined]


def renew_lease(session: Session, conn_id: str, owner: str, seconds: float) -> bool:
    """Extend ``owner``'s lease; False when it is not the holder any more."""
    done = session.execute(
        update(IdpConnection)
        .where(IdpConnection.id == conn_id, IdpConnection.lease_owner == owner)
        .values(lease_until=utcnow() + timedelta(seconds=seconds))
    )
    return bool(done.rowcount == 1)  # type: ignore[attr-defined]


def drop_lease(session: Session, conn_id: str, owner: str) -> None:
    session.execute(
        update(IdpConnection)
        .where(IdpConnection.id == conn_id, IdpConnection.lease_owner == owner)
        .values(lease_until=None, lease_owner=None)
    )
