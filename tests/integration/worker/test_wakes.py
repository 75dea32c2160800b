"""Every committed change wakes the drain that applies it (issue 9); the sweep is only a
safety net, so none of these tests runs a beat."""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest
import redis

from models.cache.client import CheckClient
from models.cache.writer import CacheWriter
from models.db.config_store import create_rule
from models.db.database import Database
from models.settings import Settings
from tests.integration.cache.world import DS_RULE, World
from tests.integration.worker.conftest import WorkerProcess, wait_until
from worker.event_wakes import derive_flag
from worker.hooks import ChangeHook, install_change_hook
from worker.lanes import ALL_LANES
from worker.pipeline import drain

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


class Queue:
    """The broker as the hook and the drains see it: what was enqueued, run in order by
    ``run`` exactly as a worker would (every drain gets this queue's ``enqueue``)."""

    def __init__(self, db: Database, writer: CacheWriter) -> None:
        self.db = db
        self.writer = writer
        self.tasks: deque[tuple[str, str]] = deque()

    def enqueue(self, org_id: str, wake: str) -> None:
        self.tasks.append((org_id, wake))

    def run(self) -> int:
        ran = 0
        while self.tasks:
            org_id, wake = self.tasks.popleft()
            report = drain(self.db, self.writer, org_id, wake, enqueue=self.enqueue)
            if report.backlog and not report.busy:  # out of budget: a continuation
                self.tasks.append((org_id, wake))
            ran += 1
        return ran


def test_a_change_marked_after_the_holders_last_read_is_drained_by_the_holder(
    pg_database: Database, cache: redis.Redis
) -> None:
    """The race of issue 9: drain A has read its lanes (empty) and is about to let its
    lease go; a removal commits now. Its mark found the wake flag set (no task), or its
    task found A's lease held and retried only after the lease's TTL: either way the
    removal waited for a countdown or the sweep. A must read once more before it lets go."""
    world = World.create(pg_database)
    world.workspace("ws1")
    world.team("eng", ["alice", "bob", "carol"], "ws1", "editor")
    writer = world.cached(cache)
    queue = Queue(pg_database, writer)
    hook = ChangeHook(cache, queue.enqueue)
    pg_database.add_listener(hook)
    checks = CheckClient(cache, world.org_id)

    world.remove_member("eng", "bob")  # wakes drain A
    assert list(queue.tasks) == [(world.org_id, "p")]
    queue.tasks.clear()
    read_lanes = writer.pending
    injected: list[str] = []

    def pending(lane: str, limit: int) -> list[tuple[str, int]]:
        items = read_lanes(lane, limit)
        if not items and lane == "r" and not injected:  # A's last read came back empty
            injected.append(lane)
            world.remove_member("eng", "carol")  # commits now; its mark finds A's flag
            queue.run()  # a drain task it enqueued (if any) runs while A holds the lease
        return items

    writer.pending = pending  # type: ignore[method-assign]
    drain(pg_database, writer, world.org_id, "p", enqueue=queue.enqueue)  # drain A
    writer.pending = read_lanes  # type: ignore[method-assign]
    queue.run()  # whatever A or B left enqueued runs at once (no countdown, no sweep)
    assert injected
    for name in ("bob", "carol"):
        answer = checks.check(world.users[name], "ws1", "create_sources")
        assert answer.status == "deny", name
    assert writer.backlog(ALL_LANES) == 0
    assert checks.check(world.users["alice"], "ws1", "create_sources").allowed


@pytest.mark.worker
def test_group_rename_applies_mapping_rules_without_the_sweep(
    pg_database: Database, cache: redis.Redis, settings: Settings, workers: WorkerProcess
) -> None:
    """``group.renamed`` carries no user, so it fed no lane and woke no drain: a rename
    into a mapping rule's pattern took effect only at the next sweep. No beat runs here."""
    world = World.create(pg_database)
    world.workspace("ws1")
    world.user("alice")
    with pg_database.write() as s:
        create_rule(s, world.admin, DS_RULE)
    world.group("team", ["alice"])
    world.cached(cache)
    install_change_hook(pg_database, settings)
    workers.start()
    checks = CheckClient(cache, world.org_id)
    alice = world.users["alice"]
    assert not checks.check(alice, "ws1", "manage_workspace").allowed

    world.rename("team", "ds-ws1-admin")  # the rule now binds the group: admin in ws1
    wait_until(lambda: checks.check(alice, "ws1", "manage_workspace").allowed, timeout=15)

    world.rename("team", "plain-team")  # and unbinds it again
    wait_until(lambda: not checks.check(alice, "ws1", "manage_workspace").allowed, timeout=15)


class Counting(redis.Redis):
    """A real client that notes the name of every command it sends."""

    sent: list[str]

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent.append(str(args[0]).upper())
        return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]


def test_other_wake_ups_ride_the_marks_round_trip_and_coalesce(
    pg_database: Database, cache: redis.Redis
) -> None:
    """The events' derive wake-up (``ChangeHook.also``) is set by the marks' script, in the
    same Redis round trip: a commit sends it when it set the flag, and a commit that finds
    the flag still set sends nothing (the derive task on its way reads that commit too)."""
    world = World.create(pg_database)
    world.workspace("ws1")
    world.team("eng", ["alice", "bob", "carol"], "ws1", "editor")
    writer = world.cached(cache)
    queue = Queue(pg_database, writer)
    counting = Counting(connection_pool=cache.connection_pool)
    counting.sent = []
    hook = ChangeHook(counting, queue.enqueue)
    sent: list[str] = []
    hook.also.append((derive_flag, sent.append))
    pg_database.add_listener(hook)
    flag = derive_flag(world.org_id)
    cache.delete(flag)

    world.remove_member("eng", "bob")
    assert list(queue.tasks) == [(world.org_id, "p")]
    assert sent == [world.org_id]
    assert cache.get(flag) == b"1"
    world.remove_member("eng", "carol")  # the flag is still set: coalesced
    assert sent == [world.org_id]
    cache.delete(flag)  # the derive task took it
    world.remove_member("eng", "alice")
    assert sent == [world.org_id, world.org_id]
    assert counting.sent == ["EVALSHA"] * 3  # one round trip per commit, marks and wakes
