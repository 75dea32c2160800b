"""Layer: app. Console sessions: an admin key exchanged for a server-side session in Redis.

The browser holds only the session id (256 random bits, in an HttpOnly cookie); Redis
holds ``idsync:console:session:<SHA-256 of the id>``, a hash naming the organization and
the admin key it was opened with, so a copy of Redis (or of its keys) opens nothing.
Expiry is Redis's own: each use sets the key's TTL to the idle limit, capped by what
is left of the absolute one, so an idle session disappears without a sweep. A key
revoked after sign-in ends its sessions at their next request (``models.db.admin_keys``).
Why Redis and not SQL: docs/console.md.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from models.cache.connection import CacheRedis

KEY_PREFIX = "idsync:console:session:"
SESSION_ID_BYTES = 32


@dataclass(frozen=True)
class ConsoleSession:
    """Who a console session speaks for."""

    session_id: str
    org_id: str
    org_name: str
    key_id: str
    created_at: float

    @property
    def csrf_token(self) -> str:
        return csrf_token_of(self.session_id)


def csrf_token_of(session_id: str) -> str:
    """The session's CSRF token: derived from its id (HMAC), so nothing more is stored and
    a page from another session's tab cannot write in this one."""
    return hmac.new(session_id.encode(), b"idsync console csrf", hashlib.sha256).hexdigest()


def same_secret(presented: str | None, expected: str) -> bool:
    """Constant-time comparison (a missing value is never equal)."""
    if not presented:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _key(session_id: str) -> str:
    return KEY_PREFIX + hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    """Open, find (and refresh) and close sessions; ``idle_s`` and ``max_age_s`` from
    ``IDSYNC_CONSOLE_IDLE_S`` and ``IDSYNC_CONSOLE_MAX_AGE_S``."""

    def __init__(self, redis: CacheRedis, *, idle_s: float, max_age_s: float) -> None:
        self.redis = redis
        self.idle_s = idle_s
        self.max_age_s = max_age_s

    def _ttl_ms(self, created_at: float, now: float) -> int:
        left = min(self.idle_s, created_at + self.max_age_s - now)
        return int(left * 1000)

    def open(self, org_id: str, org_name: str, key_id: str) -> ConsoleSession:
        session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
        now = time.time()
        key = _key(session_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(
            key,
            mapping={
                "org_id": org_id,
                "org_name": org_name,
                "key_id": key_id,
                "created_at": repr(now),
            },
        )
        pipe.pexpire(key, self._ttl_ms(now, now))
        pipe.execute()
        return ConsoleSession(session_id, org_id, org_name, key_id, now)

    def find(self, session_id: str) -> ConsoleSession | None:
        """The live session ``session_id`` names, its idle clock restarted; None when it
        is unknown, idle too long or past its absolute age."""
        if not session_id or len(session_id) > 128:
            return None
        key = _key(session_id)
        raw = self.redis.hgetall(key)
        if not raw:
            return None
        fields = {_text(k): _text(v) for k, v in raw.items()}
        created_at = float(fields["created_at"])
        ttl_ms = self._ttl_ms(created_at, time.time())
        if ttl_ms <= 0:
            self.redis.delete(key)
            return None
        self.redis.pexpire(key, ttl_ms)
        return ConsoleSession(
            session_id, fields["org_id"], fields["org_name"], fields["key_id"], created_at
        )

    def close(self, session_id: str) -> None:
        self.redis.delete(_key(session_id))
