"""Writer, reader, revision guard, rebuild flip and reconcile against a real Redis."""

from __future__ import annotations

import threading

import pytest
import redis

import worker.pipeline as pipeline
from models.access.inputs import ResourceRef
from models.cache.client import Check, CheckClient, Query, SpacesQuery, SyncCheck
from models.cache.layout import NO_ACCESS
from models.cache.writer import CacheWriter, PutResult
from models.db.database import Database
from tests.integration.cache.world import World
from worker import rebuild as rb
from worker.lanes import PRIORITY
from worker.reconcile import reconcile

pytestmark = [pytest.mark.redis]


def _world(db: Database) -> World:
    w = World.create(db)
    w.workspace("ws1", spaces_enabled=True)
    w.workspace("ws2")
    w.team("eng", ["alice", "bob"], "ws1", "editor")
    w.team("ops", ["carol"], "ws2", "admin")
    return w


def _drop_org(cache: redis.Redis, org_id: str) -> None:
    keys = list(cache.scan_iter(match=f"idsync:{{{org_id}}}:*", count=1000))
    if keys:
        cache.delete(*keys)


def test_unbuilt_cache_answers_unknown_then_known(database: Database, cache: redis.Redis) -> None:
    w = _world(database)
    checks = CheckClient(cache, w.org_id)
    alice = w.users["alice"]
    first = checks.check(alice, "ws1", "create_sources")
    assert first.status == "unknown" and not first.allowed and first.reason == "cache_not_built"
    assert checks.visible_spaces(alice, "ws1").spaces is None
    w.cached(cache)
    assert checks.check(alice, "ws1", "create_sources").status == "allow"
    assert checks.check(alice, "ws1", "manage_workspace").status == "deny"
    assert checks.check(alice, "ws2", "create_sources").reason == "no_role_in_workspace"
    assert checks.check("no-such-user", "ws1", "create_sources").reason == "unknown_user"
    assert checks.check(w.users["carol"], "ws2", "manage_workspace").allowed
    _drop_org(cache, w.org_id)  # Redis lost: unknown again, never a deny-all
    assert checks.check(alice, "ws1", "create_sources").status == "unknown"


def test_batch_is_one_round_trip_and_matches_singles(
    database: Database, cache: redis.Redis
) -> None:
    w = _world(database)
    w.cached(cache)
    checks = CheckClient(cache, w.org_id)
    checks.check(w.users["alice"], "ws1", "read")  # learn the generation
    queries: list[Query] = []
    for i in range(100):
        user = w.users[("alice", "bob", "carol")[i % 3]]
        ws = ("ws1", "ws2")[i % 2]
        if i % 10 == 0:
            queries.append(SpacesQuery(user, ws))
        elif i % 7 == 0:
            sync = pipeline_sync("src1", "dst1", "sp1")
            queries.append(SyncCheck(user, ws, sync, "configure"))
        else:
            queries.append(Check(user, ws, "view_data", ResourceRef("source", "src1")))
    before = checks.round_trips
    batch = checks.batch(queries)
    assert checks.round_trips == before + 1
    singles = [checks.batch([q])[0] for q in queries]
    assert batch == singles
    with pytest.raises(ValueError, match="grant"):
        checks.check(w.users["alice"], "ws1", "no_such_grant")


def pipeline_sync(src: str, dst: str, space: str):  # type: ignore[no-untyped-def]
    from models.access.refs import SyncRef

    return SyncRef.of(src, dst, space)


def test_min_revision_falls_back_to_sql(database: Database, cache: redis.Redis) -> None:
    w = _world(database)
    w.cached(cache)
    w.remove_member("eng", "bob")  # no worker, no hook: the cache stays behind
    rev = w.revision()
    stale = CheckClient(cache, w.org_id, max_wait_s=0.05)
    assert stale.check(w.users["bob"], "ws1", "create_sources").allowed  # not yet reflected
    behind = stale.check(w.users["bob"], "ws1", "create_sources", min_revision=rev)
    assert behind.status == "unknown" and behind.reason == "cache_behind_min_revision"
    fresh = CheckClient(cache, w.org_id, database=database, max_wait_s=0.05)
    answer = fresh.check(w.users["bob"], "ws1", "create_sources", min_revision=rev)
    assert answer.status == "deny" and answer.source == "sql" and answer.revision >= rev


def test_stale_recompute_never_overwrites_a_newer_one(
    pg_database: Database, cache: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recompute A reads SQL, then stalls; B reads newer SQL and writes; A writes last: B wins."""
    w = _world(pg_database)
    writer = w.cached(cache)
    bob = w.users["bob"]
    a_computed, a_may_write = threading.Event(), threading.Event()

    def pause(_seconds: float) -> None:
        if threading.current_thread().name == "recompute-A":
            a_computed.set()
            assert a_may_write.wait(30)

    monkeypatch.setattr(pipeline, "_fault_pause", pause)
    results: dict[str, tuple[int, PutResult]] = {}

    def run_a() -> None:
        results["a"] = pipeline.recompute_users(pg_database, writer, w.org_id, [bob])

    thread = threading.Thread(target=run_a, name="recompute-A")
    thread.start()
    assert a_computed.wait(30)  # A saw bob in "eng" (editor)
    w.remove_member("eng", "bob")
    rev_b, result_b = pipeline.recompute_users(pg_database, writer, w.org_id, [bob])
    assert result_b.written == 1
    a_may_write.set()
    thread.join(30)
    rev_a, result_a = results["a"]
    assert rev_a < rev_b and result_a.stale == 1 and result_a.written == 0
    answer = CheckClient(cache, w.org_id).check(bob, "ws1", "create_sources")
    assert answer.status == "deny" and answer.revision >= rev_b


def test_rebuild_flip_keeps_changes_made_while_building(
    pg_database: Database, cache: redis.Redis
) -> None:
    w = _world(pg_database)
    writer = w.cached(cache)
    checks = CheckClient(cache, w.org_id)
    bob = w.users["bob"]
    gen = rb.start(writer).gen  # new generation, not yet populated
    rev, _total, ranges = rb.plan(pg_database, w.org_id)
    for lo, hi in ranges:  # the chunk reads SQL before bob's removal...
        rb.build_chunk(pg_database, writer, w.org_id, lo, hi)
    w.remove_member("eng", "bob")  # ...a change arrives during the rebuild...
    report = pipeline.drain(pg_database, writer, w.org_id, PRIORITY)
    assert report.processed == 1
    assert checks.check(bob, "ws1", "create_sources").status == "deny"  # old gen serves it
    assert writer.flip(gen, rev)
    answer = checks.check(bob, "ws1", "create_sources")  # ...and survives the flip
    assert answer.status == "deny"
    assert checks.check(w.users["alice"], "ws1", "create_sources").allowed
    assert writer.meta().gen == gen
    assert not cache.exists(writer.keys.users(gen - 1))


def test_reconcile_detects_and_repairs_drift(pg_database: Database, cache: redis.Redis) -> None:
    w = _world(pg_database)
    writer = CacheWriter(cache, w.org_id)
    meta_missing = reconcile(pg_database, writer, w.org_id)
    assert meta_missing.cache_missing
    rb.rebuild(pg_database, writer, w.org_id)
    assert reconcile(pg_database, writer, w.org_id).drift == 0
    gen = writer.meta().gen
    assert gen is not None
    alice, carol = w.users["alice"], w.users["carol"]
    cache.hdel(writer.keys.users(gen), alice)  # lost entry
    carol_value = cache.hget(writer.keys.users(gen), carol)
    assert carol_value is not None
    cache.hset(writer.keys.users(gen), carol, f"{NO_ACCESS}|0")  # wrong entry
    cache.hset(writer.keys.users(gen), "ghost", "abc|0")  # user SQL does not know
    report = reconcile(pg_database, writer, w.org_id, repair=False)
    assert (report.users_missing, report.users_wrong, report.users_extra) == (1, 1, 1)
    report = reconcile(pg_database, writer, w.org_id)
    assert report.drift == 3 and report.repaired >= 3
    assert reconcile(pg_database, writer, w.org_id).drift == 0
    checks = CheckClient(cache, w.org_id)
    assert checks.check(alice, "ws1", "create_sources").allowed
    assert checks.check(carol, "ws2", "manage_workspace").allowed
    assert checks.check("ghost", "ws1", "read").status == "deny"
