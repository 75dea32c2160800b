"""Scheduled reconcile housekeeping (plain functions, real Redis and PostgreSQL):
mapping rules re-applied after a cursor jump, tombstone pruning."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis
from sqlalchemy import delete, func, select, update

from models.cache.client import CheckClient
from models.cache.layout import NO_ACCESS, decode_user
from models.cache.writer import CacheWriter
from models.db.base import utcnow
from models.db.config_store import create_rule
from models.db.config_tables import RoleBindingRow
from models.db.database import Database
from models.db.tables import Change
from scim.users import delete_user
from tests.integration.cache.world import DS_RULE, World
from worker import pipeline
from worker import rebuild as rb
from worker.lanes import BULK, PRIORITY
from worker.rebuild import rebuild
from worker.reconcile import reconcile

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def _bindings(db: Database, group_id: str) -> list[tuple[str, str, str]]:
    with db.read() as s:
        rows = s.execute(
            select(RoleBindingRow.workspace_id, RoleBindingRow.role_id, RoleBindingRow.source)
            .where(RoleBindingRow.group_id == group_id)
            .order_by(RoleBindingRow.workspace_id)
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def _changes(db: Database, org_id: str) -> int:
    with db.read() as s:
        return int(s.scalar(select(func.count()).where(Change.org_id == org_id)) or 0)


def _drain(db: Database, writer: CacheWriter, org_id: str) -> None:
    pipeline.drain(db, writer, org_id, PRIORITY)
    pipeline.drain(db, writer, org_id, BULK)


def test_reconcile_reapplies_mapping_rules_after_a_cursor_jump(
    pg_database: Database, cache: redis.Redis
) -> None:
    db = pg_database
    w = World.create(db)
    w.workspace("ws1")
    w.user("alice")
    with db.write() as s:
        create_rule(s, w.admin, DS_RULE)
    writer = CacheWriter(cache, w.org_id)
    rebuild(db, writer, w.org_id)
    # A group created while nothing drained, then a rebuild flips the cursor past its
    # group.created row: the outbox catch-up never sees it, so no rule is applied.
    gid = w.group("ds-ws1-editor", ["alice"])
    rebuild(db, writer, w.org_id)
    assert writer.meta().cursor >= w.revision()
    _drain(db, writer, w.org_id)
    assert _bindings(db, gid) == []
    checks = CheckClient(cache, w.org_id)
    alice = w.users["alice"]
    assert not checks.check(alice, "ws1", "create_sources").allowed

    dry = reconcile(db, writer, w.org_id, repair=False)  # reports, writes nothing
    assert (dry.rule_bindings_created, dry.rule_bindings_removed) == (1, 0)
    assert _bindings(db, gid) == []

    report = reconcile(db, writer, w.org_id)
    assert report.rule_bindings_created == 1
    assert _bindings(db, gid) == [("ws1", "editor", "ds")]
    with db.read() as s:
        last = s.scalars(
            select(Change).where(Change.org_id == w.org_id).order_by(Change.revision.desc())
        ).first()
    assert last is not None and last.kind == "config.rules.applied" and last.group_ids == [gid]
    _drain(db, writer, w.org_id)
    answer = checks.check(alice, "ws1", "create_sources")
    assert answer.allowed and answer.revision >= last.revision

    # idempotent: nothing to change -> no binding row and no change row
    before = _changes(db, w.org_id)
    again = reconcile(db, writer, w.org_id)
    assert (again.rule_bindings_created, again.rule_bindings_removed) == (0, 0)
    assert _changes(db, w.org_id) == before and again.drift == 0

    # a rule-made binding lost while rules were not applied is restored as well
    with db.write() as s:
        s.execute(delete(RoleBindingRow).where(RoleBindingRow.group_id == gid))
    assert reconcile(db, writer, w.org_id).rule_bindings_created == 1
    assert _bindings(db, gid) == [("ws1", "editor", "ds")]


def _age_change(db: Database, org_id: str, revision: int, hours: float) -> None:
    """Make the change row of ``revision`` look ``hours`` old (the change log's clock)."""
    with db.write() as s:
        s.execute(
            update(Change)
            .where(Change.org_id == org_id, Change.revision == revision)
            .values(created_at=utcnow() - timedelta(hours=hours))
        )


def test_reconcile_prunes_old_tombstones_of_deleted_users_only(
    pg_database: Database, cache: redis.Redis
) -> None:
    db = pg_database
    w = World.create(db)
    w.workspace("ws1")
    w.team("eng", ["alice", "bob", "carol"], "ws1", "editor")
    writer = w.cached(cache)
    alice, bob, carol = (w.users[n] for n in ("alice", "bob", "carol"))
    with db.write() as s:
        delete_user(s, w.scim, bob, None)
    w.set_active("carol", False)  # deactivated, still in SQL: its tombstone is the answer
    _drain(db, writer, w.org_id)
    gen = writer.meta().gen
    assert gen is not None
    ukey = writer.keys.users(gen)

    def stored(uid: str) -> tuple[str, int] | None:
        raw = cache.hget(ukey, uid)
        return None if raw is None else decode_user(raw if isinstance(raw, str) else raw.decode())

    bob_tomb, carol_tomb = stored(bob), stored(carol)
    assert bob_tomb is not None and bob_tomb[0] == NO_ACCESS
    assert carol_tomb is not None and carol_tomb[0] == NO_ACCESS
    alice_set = stored(alice)
    assert alice_set is not None

    # young tombstone: kept, and it refuses a late write computed before the deletion
    young = reconcile(db, writer, w.org_id, tombstone_retention_s=3600)
    assert (young.tombstones_pruned, young.tombstones_retained) == (0, 1)
    late = writer.put(bob_tomb[1] - 1, {bob: alice_set[0]})
    assert late.stale == 1 and stored(bob) == bob_tomb

    # once the change that wrote it is older than the retention, it is dropped
    _age_change(db, w.org_id, bob_tomb[1], hours=2)
    _age_change(db, w.org_id, carol_tomb[1], hours=2)
    dry = reconcile(db, writer, w.org_id, repair=False, tombstone_retention_s=3600)
    assert dry.tombstones_pruned == 1 and stored(bob) == bob_tomb  # dry run: reported only
    assert reconcile(db, writer, w.org_id, tombstone_retention_s=None).tombstones_pruned == 0
    pruned = reconcile(db, writer, w.org_id, tombstone_retention_s=3600)
    assert (pruned.tombstones_pruned, pruned.tombstones_retained) == (1, 0)
    assert stored(bob) is None
    assert stored(carol) == carol_tomb  # deactivated users keep theirs
    checks = CheckClient(cache, w.org_id)
    answer = checks.check(bob, "ws1", "create_sources")
    assert answer.status == "deny" and answer.reason == "unknown_user"
    assert not checks.check(carol, "ws1", "create_sources").allowed
    assert checks.check(alice, "ws1", "create_sources").allowed
    after = reconcile(db, writer, w.org_id, tombstone_retention_s=3600)
    assert after.drift == 0 and after.tombstones_pruned == 0


def test_prune_is_compare_and_delete_and_skips_a_running_rebuild(
    pg_database: Database, cache: redis.Redis
) -> None:
    w = World.create(pg_database)
    writer = CacheWriter(cache, w.org_id)
    rebuild(pg_database, writer, w.org_id)
    gen = writer.meta().gen
    assert gen is not None
    ukey = writer.keys.users(gen)
    cache.hset(ukey, mapping={"u1": f"{NO_ACCESS}|5", "u2": f"{NO_ACCESS}|7"})
    # u2 was rewritten after the reconcile read it: the newer value stays
    assert writer.prune_tombstones(gen, {"u1": f"{NO_ACCESS}|5", "u2": f"{NO_ACCESS}|6"}) == 1
    assert cache.hget(ukey, "u1") is None and cache.hget(ukey, "u2") == f"{NO_ACCESS}|7".encode()
    rb_gen = rb.start(writer).gen  # a generation being built: nothing is pruned meanwhile
    assert writer.prune_tombstones(gen, {"u2": f"{NO_ACCESS}|7"}) == -1
    assert cache.hget(ukey, "u2") is not None
    writer.abort_rebuild(rb_gen)
