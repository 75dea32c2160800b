"""Layer: pure. A short-lived, in-process memory of bearer secrets that verified (no I/O).

Verifying a SCIM token is a database round trip; an IdP pushing a provisioning run
presents the same token hundreds of times a second. This cache remembers a *positive*
verification for `ttl_s` seconds, so a burst costs one lookup per window instead of one
per request. What it trades, and the bounds on it:

- A revoked token keeps working in a process that verified it in the last `ttl_s`
  seconds (default 2 s, `IDSYNC_SCIM_TOKEN_CACHE_S`; 0 turns the cache off). A
  revocation through this process (`forget_all`) takes effect at once.
- Unknown, malformed and revoked tokens are never remembered: a wrong token always
  costs a lookup and always gets 401.
- Entries are keyed by the SHA-256 of the presented secret (no plaintext is kept) and
  hold the verified identity, so one organization's token can only ever resolve to
  that organization.
- At most `max_entries` tokens are remembered; the least recently used goes first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from cachetools import TTLCache

from models.credentials import hash_secret

T = TypeVar("T")


class VerifiedCache(Generic[T]):
    """Identities of recently verified secrets, each for at most `ttl_s` seconds (a
    ``cachetools.TTLCache`` under a lock: it is not thread-safe itself)."""

    def __init__(
        self,
        ttl_s: float,
        *,
        max_entries: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s < 0:
            raise ValueError("ttl_s must be >= 0")
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock  # public: tests move time
        self._entries: TTLCache[str, T] = TTLCache(max_entries, ttl_s, timer=self._now)
        self._lock = threading.Lock()

    def _now(self) -> float:
        return self.clock()  # read at each call: a test may swap the clock

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    def get(self, presented: str) -> T | None:
        """The identity remembered for `presented`, or None (verify it, then `put`)."""
        if not self.enabled:
            return None
        with self._lock:
            self._entries.expire()
            return self._entries.get(hash_secret(presented))

    def put(self, presented: str, identity: T) -> None:
        """Remember that `presented` verified as `identity` (call only after verifying)."""
        if not self.enabled:
            return
        with self._lock:
            self._entries[hash_secret(presented)] = identity

    def forget_all(self) -> None:
        """Drop every entry (after a revocation made through this process)."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            self._entries.expire()
            return len(self._entries)
