"""Rebuild leases and reports (issues 9 and 10 #12): a SIGKILLed `idsync cache rebuild`
no longer blocks the next one; `--via-worker` gives up with one line when its worker
dies; the report counts the group-set profiles the generation holds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
import redis
from sqlalchemy import insert

from models.cache.writer import CacheWriter
from models.db.base import utcnow
from models.db.database import Database
from models.db.tables import GroupMember, User
from tests.integration.cache.world import World
from tests.integration.worker.conftest import (
    BROKER_URL,
    CACHE_URL,
    ROOT,
    WorkerProcess,
    wait_until,
)
from worker import rebuild as rb

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def _big_world(db: Database, users: int) -> World:
    """One workspace, one bound group holding ``users`` users (inserted in bulk)."""
    world = World.create(db)
    world.workspace("ws1")
    gid = world.group("big", [])
    world.bind("big", "ws1", "viewer")
    now = utcnow()
    ids = [str(uuid.uuid4()) for _ in range(users)]
    with db.engine.begin() as c:
        c.execute(
            insert(User),
            [
                {
                    "id": u,
                    "org_id": world.org_id,
                    "user_name": f"big{i}",
                    "user_name_norm": f"big{i}",
                    "active": True,
                    "attrs": {},
                    "version": 1,
                    "created_at": now,
                    "updated_at": now,
                }
                for i, u in enumerate(ids)
            ],
        )
        c.execute(
            insert(GroupMember),
            [
                {"group_id": gid, "user_id": u, "org_id": world.org_id, "created_at": now}
                for u in ids
            ],
        )
    return world


def _env(pg_url: str) -> dict[str, str]:
    return dict(
        os.environ,
        DATABASE_URL=pg_url,
        REDIS_URL=BROKER_URL,
        CACHE_REDIS_URL=CACHE_URL,
        PYTHONPATH=str(ROOT),
    )


def _cli(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "idsync.cli", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_rebuild_reports_the_distinct_group_sets_the_generation_holds(
    pg_database: Database, cache: redis.Redis
) -> None:
    """Chunks counted their own sets and the report added them up: a set shared by users
    of several chunks counted once per chunk (99,605 reported vs 92,349 stored)."""
    world = World.create(pg_database)
    world.workspace("ws1")
    for name in ("a", "b", "c", "d", "e", "f", "g", "h"):
        world.user(name)
    world.group("g1", ["a", "b", "c", "d", "g"])
    world.group("g2", ["c", "e", "f", "g"])
    world.bind("g1", "ws1", "viewer")
    world.set_active("h", False)
    # group sets: {g1} a b d, {g1,g2} c g, {g2} e f; h inactive (no profile)
    writer = CacheWriter(cache, world.org_id)
    report = rb.rebuild(pg_database, writer, world.org_id, chunk=2)  # every set spans chunks
    assert report.chunks == 4 and report.users == 8
    assert report.sets == 3
    assert cache.hlen(writer.keys.sets(report.gen)) == 3


@pytest.mark.worker
def test_a_killed_cli_rebuild_is_taken_over_by_the_next(
    pg_database: Database, pg_url: str, cache: redis.Redis
) -> None:
    world = _big_world(pg_database, 12_000)
    writer = CacheWriter(cache, world.org_id)
    env = _env(pg_url)
    first = _cli(env, "cache", "rebuild", "--org", world.org_id, "--chunk", "300")
    try:
        wait_until(lambda: int(cache.hget(writer.keys.rebuild, "done") or 0) >= 600, 60)
        os.killpg(first.pid, signal.SIGKILL)  # mid-build: generation 1 is half written
    finally:
        first.wait(timeout=10)
    assert writer.meta().building is not None

    started = time.monotonic()
    second = _cli(env, "cache", "rebuild", "--org", world.org_id)
    out, err = second.communicate(timeout=120)
    took = time.monotonic() - started
    assert second.returncode == 0, err
    assert "12000 users, 1 group-set profiles" in out
    assert took < rb.LEASE_MS / 1000 + 30, took  # was: ~120 s of "generation 1 is being built"
    meta = writer.meta()
    assert meta.gen is not None and meta.building is None
    assert cache.hlen(writer.keys.users(meta.gen)) == 12_000
    for gen in range(1, meta.gen):  # the dead builder's half generation is gone
        assert not cache.exists(writer.keys.users(gen))


@pytest.mark.worker
def test_via_worker_gives_up_with_one_line_when_its_worker_dies(
    pg_database: Database, pg_url: str, cache: redis.Redis, workers: WorkerProcess
) -> None:
    world = _big_world(pg_database, 12_000)
    writer = CacheWriter(cache, world.org_id)
    proc = workers.start(concurrency=1)
    args = ("cache", "rebuild", "--org", world.org_id, "--via-worker", "--timeout", "5")
    cli = _cli(_env(pg_url), *args)  # it waited forever once its worker was gone
    try:
        wait_until(lambda: cache.hget(writer.keys.rebuild, "state") == b"running", 60)
        workers.kill(proc)  # the worker dies while its chunks are queued or running
        _out, err = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)
    assert cli.returncode == 1, err
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert "worker" in lines[-1] and "run the command again" in lines[-1], err
