"""Registered resource labels on the cache path (contract §3, legacy label conditions):
the check client fills labels the caller did not pass from the cache, in the same round
trip, so cache answers equal ``AccessModel`` answers (which use the registered list)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import redis

import worker.pipeline as pipeline
from models.access.access_model import AccessModel
from models.access.inputs import ResourceRef
from models.access.refs import SyncRef
from models.cache.client import Answer, Check, CheckClient, Query, SyncCheck
from models.cache.layout import LABELS_REV, encode_labels, label_field
from models.db.config_loader import load_org_config, load_user_inputs
from models.db.config_store import create_role, delete_resource, put_resource
from models.db.database import Database
from tests.conftest import REDIS_TEST_URL
from tests.integration.cache.world import World
from worker import rebuild as rb
from worker.lanes import PRIORITY
from worker.reconcile import reconcile

pytestmark = [pytest.mark.redis]

PROD_SYNCS = {
    "statements": [
        {
            "effect": "allow",
            "actions": ["read", "start"],
            "resource": "sync",
            "conditions": {"labels": {"environment": "production"}},
        },
        {
            "effect": "allow",
            "actions": ["read"],
            "resource": "source",
            "conditions": {"labels": {"team": ["data", "ops"]}},
        },
        {"effect": "allow", "actions": ["read"], "resource": "destination"},
    ]
}
SYNCS = ("s-prod", "s-stage", "s-unregistered")
SOURCES = ("src-data", "src-web", "src-unregistered")
ACTIONS = ("read", "start", "update")


def _register(w: World, ws: str, rtype: str, rid: str, **labels: str) -> None:
    with w.db.write() as s:
        put_resource(s, w.admin, ws, resource_type=rtype, resource_id=rid, labels=labels)


def _unregister(w: World, ws: str, rtype: str, rid: str) -> None:
    with w.db.write() as s:
        delete_resource(s, w.admin, ws, rtype, rid)


def _world(db: Database) -> World:
    w = World.create(db)
    w.workspace("lw", permissions_model="legacy")
    w.workspace("lw2", permissions_model="legacy")  # no group bound here
    for n in ("alice", "bob"):
        w.user(n)
    w.group("syncers", ["alice"])
    with db.write() as s:
        create_role(
            s, w.admin, "prod-syncs", name="Production syncs", model="legacy", definition=PROD_SYNCS
        )
    w.bind("syncers", "lw", "prod-syncs")
    _register(w, "lw", "sync", "s-prod", environment="production")
    _register(w, "lw", "sync", "s-stage", environment="staging")
    _register(w, "lw", "source", "src-data", team="data")
    _register(w, "lw", "source", "src-web", team="web")
    _register(w, "lw2", "sync", "s-prod", environment="production")
    return w


def _queries(w: World) -> list[Query]:
    out: list[Query] = []
    for user in (w.users["alice"], w.users["bob"]):
        for ws in ("lw", "lw2"):
            for action in ACTIONS:
                for sid in SYNCS:
                    out.append(Check(user, ws, action, ResourceRef("sync", sid)))
                    for src in SOURCES:
                        sync = SyncRef.of(src, "dst-1", id=sid)
                        out.append(SyncCheck(user, ws, sync, action))
            for src in SOURCES:
                out.append(Check(user, ws, "read", ResourceRef("source", src)))
    return out


def _expected(db: Database, w: World, queries: Sequence[Query]) -> list[bool]:
    """The reference: ``AccessModel`` over SQL (registered labels from the resource list)."""
    with db.read() as s:
        config = load_org_config(s, w.org_id)
        users = load_user_inputs(s, w.org_id, w.users.values())
    model = AccessModel(config)
    out = []
    for q in queries:
        user = users.get(q.user)
        if isinstance(q, Check):
            out.append(model.check(user, q.workspace, q.grant, q.resource))
        else:
            assert isinstance(q, SyncCheck)
            out.append(model.decide_sync(user, q.workspace, q.sync, q.action).allowed)
    return out


def _cached(checks: CheckClient, queries: Sequence[Query]) -> list[bool]:
    checks.batch(queries[:1])  # follow a generation flip first (that costs a retry)
    before = checks.round_trips
    answers = checks.batch(queries)
    assert checks.round_trips == before + 1  # labels come in the same round trip
    known = [a for a in answers if isinstance(a, Answer) and a.known]
    assert len(known) == len(answers)
    return [a.allowed for a in known]


def test_cache_answers_equal_access_model_with_registered_labels(
    database: Database, cache: redis.Redis
) -> None:
    w = _world(database)
    w.cached(cache)
    checks = CheckClient(cache, w.org_id)
    queries = _queries(w)
    expected = _expected(database, w, queries)
    assert _cached(checks, queries) == expected
    alice = w.users["alice"]
    # the labels decide, not a blanket grant: production sync yes, staging / unknown no
    assert checks.check(alice, "lw", "start", ResourceRef("sync", "s-prod")).allowed
    assert not checks.check(alice, "lw", "start", ResourceRef("sync", "s-stage")).allowed
    assert not checks.check(alice, "lw", "start", ResourceRef("sync", "s-unregistered")).allowed
    assert checks.check_sync(alice, "lw", "src-data", "dst-1", "start").status == "deny"  # no id
    assert sum(expected) > 0 and not all(expected)

    # caller-passed labels win over the registered ones (both directions)
    staging = frozenset({("environment", "staging")})
    production = frozenset({("environment", "production")})
    passed = [
        Check(alice, "lw", "start", ResourceRef("sync", "s-prod", labels=staging)),
        Check(alice, "lw", "start", ResourceRef("sync", "s-stage", labels=production)),
        Check(alice, "lw", "start", ResourceRef("sync", "s-unregistered", labels=production)),
        Check(alice, "lw", "start", ResourceRef("sync", "s-prod", labels=frozenset())),
    ]
    assert _cached(checks, passed) == _expected(database, w, passed) == [False, True, True, False]


def test_label_changes_reach_the_cache_and_answers_stay_equal(
    database: Database, cache: redis.Redis
) -> None:
    w = _world(database)
    writer = w.cached(cache)
    checks = CheckClient(cache, w.org_id)
    queries = _queries(w)
    alice = w.users["alice"]
    stage = ResourceRef("sync", "s-stage")
    assert not checks.check(alice, "lw", "start", stage).allowed

    _register(w, "lw", "sync", "s-stage", environment="production")  # label change
    _unregister(w, "lw", "sync", "s-prod")  # deregistration
    _register(w, "lw", "source", "src-web", team="ops")
    _register(w, "lw", "sync", "s-unregistered", environment="production")  # new resource
    rev = w.revision()
    report = pipeline.drain(database, writer, w.org_id, PRIORITY)
    assert report.watermark >= rev
    assert _cached(checks, queries) == _expected(database, w, queries)
    assert checks.check(alice, "lw", "start", stage).allowed
    assert checks.check(alice, "lw", "start", stage).revision >= rev
    assert not checks.check(alice, "lw", "start", ResourceRef("sync", "s-prod")).allowed

    # a change in a workspace no group is bound in still wakes the drain and reaches the hash
    _register(w, "lw2", "sync", "s-prod", environment="staging")
    pipeline.drain(database, writer, w.org_id, PRIORITY)
    gen = writer.meta().gen
    assert gen is not None
    stored = cache.hget(writer.keys.labels(gen), label_field("lw2", "sync", "s-prod"))
    assert stored == encode_labels({("environment", "staging")}).encode()
    assert _cached(checks, queries) == _expected(database, w, queries)


def test_labels_survive_a_rebuild_and_older_snapshots_lose(
    pg_database: Database, cache: redis.Redis
) -> None:
    w = _world(pg_database)
    writer = w.cached(cache)
    old_gen = writer.meta().gen
    assert old_gen is not None
    gen = rb.start(writer).gen
    rev, _total, ranges = rb.plan(pg_database, w.org_id)
    rb.write_labels(pg_database, writer, w.org_id)
    for lo, hi in ranges:
        rb.build_chunk(pg_database, writer, w.org_id, lo, hi)
    _register(w, "lw", "sync", "s-stage", environment="production")  # during the rebuild
    pipeline.drain(pg_database, writer, w.org_id, PRIORITY)  # writes both generations
    assert writer.flip(gen, rev)
    assert not cache.exists(writer.keys.labels(old_gen))
    checks = CheckClient(cache, w.org_id)
    assert checks.check(w.users["alice"], "lw", "start", ResourceRef("sync", "s-stage")).allowed
    queries = _queries(w)
    assert _cached(checks, queries) == _expected(pg_database, w, queries)

    # a writer that read SQL before the last change never overwrites the newer hash
    stale = writer.put_labels(
        rev, {label_field("lw", "sync", "s-stage"): encode_labels(set())}, ["lw"]
    )
    assert stale.stale and stale.changed == []
    assert checks.check(w.users["alice"], "lw", "start", ResourceRef("sync", "s-stage")).allowed


def test_reconcile_repairs_label_drift(pg_database: Database, cache: redis.Redis) -> None:
    w = _world(pg_database)
    writer = w.cached(cache)
    assert reconcile(pg_database, writer, w.org_id).drift == 0
    gen = writer.meta().gen
    assert gen is not None
    key = writer.keys.labels(gen)
    cache.hdel(key, label_field("lw", "sync", "s-prod"))  # lost
    cache.hset(key, label_field("lw", "sync", "s-stage"), encode_labels({("environment", "x")}))
    cache.hset(key, label_field("lw", "sync", "ghost"), encode_labels(set()))  # unknown to SQL
    report = reconcile(pg_database, writer, w.org_id, repair=False)
    assert (report.labels_missing, report.labels_wrong, report.labels_extra) == (1, 1, 1)
    report = reconcile(pg_database, writer, w.org_id)
    assert report.drift == 3 and report.repaired >= 3
    assert reconcile(pg_database, writer, w.org_id).drift == 0
    assert cache.hget(key, LABELS_REV) is not None
    checks = CheckClient(cache, w.org_id)
    queries = _queries(w)
    assert _cached(checks, queries) == _expected(pg_database, w, queries)
    cache.srem(writer.keys.workspaces(gen), "lw")  # the workspace set lost a workspace
    cache.sadd(writer.keys.workspaces(gen), "ghost-ws")  # and holds one SQL lacks
    report = reconcile(pg_database, writer, w.org_id, repair=False)
    assert (report.labels_missing, report.labels_extra) == (1, 1)
    reconcile(pg_database, writer, w.org_id)
    assert reconcile(pg_database, writer, w.org_id).drift == 0
    assert _cached(checks, queries) == _expected(pg_database, w, queries)


def test_sql_fallback_uses_registered_labels(database: Database, cache: redis.Redis) -> None:
    w = _world(database)
    w.cached(cache)
    _register(w, "lw", "sync", "s-stage", environment="production")  # cache not drained
    checks = CheckClient(cache, w.org_id, database=database, max_wait_s=0.0)
    answer = checks.check(
        w.users["alice"], "lw", "start", ResourceRef("sync", "s-stage"), min_revision=w.revision()
    )
    assert answer.source == "sql" and answer.allowed


def test_http_check_and_explain_agree_on_registered_resources(
    database: Database, cache: redis.Redis
) -> None:
    from fastapi.testclient import TestClient

    from idsync.app import create_app
    from models.settings import Settings

    w = _world(database)
    w.cached(cache)
    settings = Settings(CACHE_REDIS_URL=REDIS_TEST_URL, IDSYNC_CHECK_API_TOKEN="t0k")
    client = TestClient(create_app(settings, database), headers={"Authorization": "Bearer t0k"})
    alice = w.users["alice"]
    for sid, allowed in (("s-prod", True), ("s-stage", False), ("s-unregistered", False)):
        body = {
            "org": w.org_id,
            "user": alice,
            "workspace": "lw",
            "grant": "start",
            "resource": {"type": "sync", "id": sid},
        }
        out = client.post("/api/v1/check/explain", json=body).json()
        assert out["cache"]["allowed"] is out["explanation"]["allowed"] is allowed
        assert client.post("/api/v1/check", json=body).json()["allowed"] is allowed
    sync = {
        "org": w.org_id,
        "user": alice,
        "workspace": "lw",
        "source": "src-data",
        "destination": "dst-1",
        "action": "start",
    }
    assert client.post("/api/v1/check/sync", json={**sync, "id": "s-prod"}).json()["allowed"]
    denied = client.post("/api/v1/check/sync", json={**sync, "id": "s-stage"}).json()
    assert denied["status"] == "deny"
    passed = {**sync, "id": "s-stage", "labels": {"environment": "production"}}
    assert client.post("/api/v1/check/sync", json=passed).json()["allowed"]
