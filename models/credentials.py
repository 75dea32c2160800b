"""Layer: pure. Secrets: generation, hashing and constant-time comparison (no I/O).

SCIM tokens and admin keys are 256-bit random strings, so a single SHA-256 is the
right storage hash (no password-stretching needed: there is nothing to brute-force).
Only the hash and a short display prefix are ever stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SCIM_TOKEN_PREFIX = "idsync_scim_"
ADMIN_KEY_PREFIX = "idsync_admin_"
DISPLAY_PREFIX_LEN = 20


def generate_secret(kind_prefix: str) -> str:
    return kind_prefix + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def display_prefix(secret: str) -> str:
    return secret[:DISPLAY_PREFIX_LEN]


def same_hash(stored_hash: str, presented_secret: str) -> bool:
    """Constant-time comparison of a stored hash with a presented secret."""
    return hmac.compare_digest(stored_hash, hash_secret(presented_secret))
