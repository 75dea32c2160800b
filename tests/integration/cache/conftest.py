"""Fixtures of the permission-cache tests: a client of the test Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.conftest import REDIS_TEST_URL


@pytest.fixture
def cache() -> Iterator[redis.Redis]:
    """A client of the test Redis (``IDSYNC_TEST_REDIS_URL``), closed after the test."""
    client = redis.Redis.from_url(REDIS_TEST_URL)
    yield client
    client.close()
