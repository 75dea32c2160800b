"""Webhook signatures: what idsync sends verifies with the sample in docs/events.md, and the
sample refuses a wrong secret, a changed body, an old or future timestamp."""

from __future__ import annotations

import hashlib
import hmac
import time

from models.webhook_signature import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature,
    signed_headers,
    verify,
)
from tests.support.webhook_receiver import docs_verifier

SECRET = "whsec-0123456789abcdef"
BODY = b'{"id":"evt_1","type":"user.created"}'


def test_the_docs_sample_verifies_what_idsync_signs() -> None:
    docs_verify = docs_verifier()
    now = int(time.time())
    headers = signed_headers(SECRET, "evt_1", now, BODY)
    assert headers["Idsync-Event-Id"] == "evt_1"
    assert docs_verify(SECRET, headers, BODY)
    assert verify(SECRET, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER], BODY, now)
    assert not docs_verify("another-secret-0000", headers, BODY)
    assert not docs_verify(SECRET, headers, BODY + b" ")
    old = signed_headers(SECRET, "evt_1", now - 301, BODY)
    assert not docs_verify(SECRET, old, BODY)  # a replay of an old request
    future = signed_headers(SECRET, "evt_1", now + 301, BODY)
    assert not docs_verify(SECRET, future, BODY)
    assert not docs_verify(SECRET, {**headers, TIMESTAMP_HEADER: "soon"}, BODY)
    moved = {**headers, TIMESTAMP_HEADER: str(now + 1)}  # the timestamp is signed too
    assert not docs_verify(SECRET, moved, BODY)


def test_signature_is_hmac_sha256_over_timestamp_and_body() -> None:
    assert signature("k", 1, b"{}") == "v1=" + hmac.new(b"k", b"1.{}", hashlib.sha256).hexdigest()
    several = f"v1=deadbeef, {signature(SECRET, 5, BODY)}"  # a rotation may send two
    assert verify(SECRET, "5", several, BODY, now=5)
