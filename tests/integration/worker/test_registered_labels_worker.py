"""Registered resource labels end to end: admin write -> after-commit hook -> real Celery
worker -> labels hash -> check client, equal to ``AccessModel`` answers throughout."""

from __future__ import annotations

import pytest
import redis

from models.access.inputs import ResourceRef
from models.cache.client import CheckClient
from models.cache.layout import encode_labels, label_field
from models.cache.writer import CacheWriter
from models.db.database import Database
from models.settings import Settings
from tests.integration.cache.test_registered_labels import (
    _cached,
    _expected,
    _queries,
    _register,
    _unregister,
    _world,
)
from tests.integration.worker.conftest import WorkerProcess, wait_until
from worker.hooks import install_change_hook
from worker.lanes import ALL_LANES
from worker.rebuild import rebuild

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.worker]


def test_label_changes_reach_the_cache_through_a_real_worker(
    pg_database: Database, cache: redis.Redis, settings: Settings, workers: WorkerProcess
) -> None:
    w = _world(pg_database)
    writer = CacheWriter(cache, w.org_id)
    rebuild(pg_database, writer, w.org_id)
    install_change_hook(pg_database, settings)
    workers.start()
    checks = CheckClient(cache, w.org_id)
    alice = w.users["alice"]
    stage = ResourceRef("sync", "s-stage")
    queries = _queries(w)
    assert _cached(checks, queries) == _expected(pg_database, w, queries)
    assert not checks.check(alice, "lw", "start", stage).allowed

    _register(w, "lw", "sync", "s-stage", environment="production")
    _unregister(w, "lw", "sync", "s-prod")
    rev = w.revision()
    answer = wait_until(
        lambda: (a := checks.check(alice, "lw", "start", stage)).revision >= rev and a
    )
    assert answer.allowed
    assert not checks.check(alice, "lw", "start", ResourceRef("sync", "s-prod")).allowed
    assert _cached(checks, queries) == _expected(pg_database, w, queries)

    # a workspace no group is bound in: the change still wakes a drain that writes the hash
    _register(w, "lw2", "sync", "s-new", environment="qa")
    field = label_field("lw2", "sync", "s-new")
    gen = writer.meta().gen
    assert gen is not None
    wait_until(lambda: cache.hget(writer.keys.labels(gen), field) is not None)
    assert (
        cache.hget(writer.keys.labels(gen), field)
        == encode_labels({("environment", "qa")}).encode()
    )
    wait_until(lambda: writer.backlog(ALL_LANES) == 0 and writer.meta().wm >= w.revision())
    assert _cached(checks, queries) == _expected(pg_database, w, queries)
