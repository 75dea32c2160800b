"""Change -> after-commit hook -> drain on a real Celery worker -> Redis -> check client."""

from __future__ import annotations

import pytest
import redis

from models.cache.client import CheckClient
from models.cache.writer import CacheWriter
from models.db.database import Database
from models.settings import Settings
from tests.integration.cache.world import World
from tests.integration.worker.conftest import WorkerProcess, wait_until
from worker.hooks import install_change_hook
from worker.lanes import ALL_LANES

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.worker]


def _world(db: Database, cache: redis.Redis, settings: Settings) -> tuple[World, CheckClient]:
    world = World.create(db)
    world.workspace("ws1")
    world.team("eng", ["alice", "bob"], "ws1", "editor")
    world.user("carol")
    world.group("ops", ["carol"])
    world.cached(cache)
    install_change_hook(db, settings)
    return world, CheckClient(cache, world.org_id)


def test_changes_reach_the_cache_through_a_real_worker(
    pg_database: Database, cache: redis.Redis, settings: Settings, workers: WorkerProcess
) -> None:
    world, checks = _world(pg_database, cache, settings)
    workers.start()
    alice, bob, carol = (world.users[n] for n in ("alice", "bob", "carol"))
    assert checks.check(bob, "ws1", "create_sources").allowed

    world.remove_member("eng", "bob")  # revocation: removal from a group
    rev = world.revision()
    answer = wait_until(
        lambda: (a := checks.check(bob, "ws1", "create_sources")).revision >= rev and a
    )
    assert answer.status == "deny"

    world.add_member("ops", "alice")  # grant lane; alice keeps her editor role
    world.bind("ops", "ws1", "admin")  # config lane: role on a group -> carol becomes admin
    wait_until(lambda: checks.check(carol, "ws1", "manage_workspace").allowed)
    wait_until(lambda: checks.check(alice, "ws1", "manage_workspace").allowed)
    assert checks.visible_spaces(carol, "ws1").spaces == "all"

    world.set_active("carol", False)  # deactivation: tombstone written before the write returns
    denied = checks.check(carol, "ws1", "manage_workspace")
    assert denied.status == "deny" and denied.reason == "user_inactive_or_deleted"

    world.set_active("carol", True)
    wait_until(lambda: checks.check(carol, "ws1", "manage_workspace").allowed)
    writer = CacheWriter(cache, world.org_id)
    wait_until(lambda: writer.backlog(ALL_LANES) == 0 and writer.meta().wm >= world.revision())
    answer = checks.check(alice, "ws1", "create_sources")
    assert answer.allowed and answer.revision == world.revision()


def test_dirty_users_coalesce(
    pg_database: Database, cache: redis.Redis, settings: Settings, workers: WorkerProcess
) -> None:
    """200 membership changes for 10 users, made while no worker runs, are ~10 recomputes."""
    world = World.create(pg_database)
    world.workspace("ws1")
    names = [f"u{i}" for i in range(10)]
    for n in names:
        world.user(n)
    world.group("g", [])
    world.bind("g", "ws1", "viewer")
    writer = world.cached(cache)
    install_change_hook(pg_database, settings)
    for _round in range(10):
        for n in names:
            world.add_member("g", n)
            world.remove_member("g", n)
    changes = 200
    for n in names[:5]:
        world.add_member("g", n)
    workers.start()
    checks = CheckClient(cache, world.org_id)
    wait_until(lambda: writer.backlog(ALL_LANES) == 0 and writer.meta().wm >= world.revision())
    stats = {
        (k if isinstance(k, str) else k.decode()): int(v)
        for k, v in cache.hgetall(writer.keys.stats).items()
    }
    recomputed = sum(stats.values())
    assert recomputed <= 2 * len(names) < changes
    for n in names:
        expect = n in names[:5]
        assert checks.check(world.users[n], "ws1", "read").allowed is expect
