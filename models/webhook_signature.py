"""Layer: pure. Signing webhook requests: HMAC-SHA256 over ``"<timestamp>.<body>"`` with the
subscription's secret (docs/events.md, Verifying a delivery, has a receiver's side).

Headers of every delivery: ``Idsync-Event-Id`` (the stable event id, for de-duplication),
``Idsync-Timestamp`` (Unix seconds when this attempt was signed) and ``Idsync-Signature``
(``v1=<hex digest>``). A receiver recomputes the digest over the raw body, compares in
constant time, and refuses a timestamp further than its tolerance from its clock (replay).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

EVENT_ID_HEADER: Final = "Idsync-Event-Id"
TIMESTAMP_HEADER: Final = "Idsync-Timestamp"
SIGNATURE_HEADER: Final = "Idsync-Signature"
SCHEME: Final = "v1"
DEFAULT_TOLERANCE_S: Final = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SCHEME}={mac.hexdigest()}"


def signed_headers(secret: str, event_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        EVENT_ID_HEADER: event_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }


def verify(
    secret: str,
    timestamp: str,
    signature_header: str,
    body: bytes,
    now: float,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> bool:
    """Whether a delivery is authentic and fresh (the same check as docs/events.md's)."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs(now - ts) > tolerance_s:
        return False
    expected = signature(secret, ts, body)
    return any(hmac.compare_digest(expected, part.strip()) for part in signature_header.split(","))
