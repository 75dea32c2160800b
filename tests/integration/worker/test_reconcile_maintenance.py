"""Scheduled reconcile housekeeping (plain functions, real Redis and PostgreSQL):
mapping rules re-applied after a cursor jump, tombstone pruning."""

from __future__ import annotations

import pytest
import redis
from sqlalchemy import delete, func, select

from models.cache.client import CheckClient
from models.cache.writer import CacheWriter
from models.db.config_store import RuleSpec, create_rule
from models.db.config_tables import RoleBindingRow
from models.db.database import Database
from models.db.tables import Change
from tests.integration.cache.world import World
from worker import pipeline
from worker.lanes import BULK, PRIORITY
from worker.rebuild import rebuild
from worker.reconcile import reconcile

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

DS_RULE = RuleSpec(
    id="ds",
    attribute="displayName",
    match="regex",
    pattern=r"^ds-(?P<workspace>[a-z0-9-]+)-(?P<role>admin|editor|viewer)$",
)


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
