"""HTTP check API: single, sync, spaces, batch, explain; unknown on an unbuilt cache."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from idsync.app import create_app
from models.cache.writer import CacheWriter
from models.db.database import Database
from models.settings import Settings
from tests.conftest import REDIS_TEST_URL
from tests.integration.cache.world import World
from worker.rebuild import rebuild

pytestmark = [pytest.mark.redis]


def test_check_api(database: Database) -> None:
    import redis

    cache = redis.Redis.from_url(REDIS_TEST_URL)
    w = World.create(database)
    w.workspace("ws1", spaces_enabled=True)
    w.team("eng", ["alice"], "ws1", "editor")
    settings = Settings(CACHE_REDIS_URL=REDIS_TEST_URL, IDSYNC_CHECK_API_TOKEN="t0k")
    client = TestClient(create_app(settings, database))
    auth = {"Authorization": "Bearer t0k"}
    alice = w.users["alice"]
    body = {"org": w.org_id, "user": alice, "workspace": "ws1", "grant": "create_sources"}
    assert client.post("/api/v1/check", json=body).status_code == 401
    unknown = client.post("/api/v1/check", json=body, headers=auth).json()
    assert unknown["status"] == "unknown" and unknown["allowed"] is False
    rebuild(database, CacheWriter(cache, w.org_id), w.org_id)
    ok = client.post("/api/v1/check", json=body, headers=auth).json()
    assert ok["status"] == "allow" and ok["revision"] == w.revision()
    spaces = client.post(
        "/api/v1/check/spaces",
        json={"org": w.org_id, "user": alice, "workspace": "ws1"},
        headers=auth,
    ).json()
    assert spaces["spaces"] == []  # a role, but no Space assigned
    sync = client.post(
        "/api/v1/check/sync",
        headers=auth,
        json={
            "org": w.org_id,
            "user": alice,
            "workspace": "ws1",
            "source": "s1",
            "destination": "d1",
            "action": "configure",
            "space_id": "sp1",
        },
    ).json()
    assert sync["status"] == "deny"
    batch = client.post(
        "/api/v1/check/batch",
        headers=auth,
        json={
            "org": w.org_id,
            "checks": [
                {"type": "check", "user": alice, "workspace": "ws1", "grant": "create_sources"},
                {"type": "check", "user": alice, "workspace": "ws1", "grant": "manage_workspace"},
                {"type": "check", "user": "nobody", "workspace": "ws1", "grant": "create_sources"},
                {"type": "spaces", "user": alice, "workspace": "ws1"},
            ],
        },
    ).json()["results"]
    assert [r["status"] for r in batch] == ["allow", "deny", "deny", "ok"]
    bad = client.post("/api/v1/check", headers=auth, json={**body, "grant": "fly"})
    assert bad.status_code == 400
    why = client.post("/api/v1/check/explain", json=body, headers=auth).json()
    assert why["cache"]["status"] == "allow" and why["explanation"]["allowed"] is True


def test_check_api_needs_a_credential_and_admin_keys_are_scoped(database: Database) -> None:
    import redis

    from models.db.admin_keys import create_admin_key
    from models.db.tables import Organization
    from models.db.tokens import get_or_create_org

    cache = redis.Redis.from_url(REDIS_TEST_URL)
    w = World.alice_edits(database, cache)
    with database.write() as session:
        own = create_admin_key(session, session.get_one(Organization, w.org_id))
        other = create_admin_key(session, get_or_create_org(session, "someone-else"))
    # No service token configured: anonymous callers are still refused.
    settings = Settings(CACHE_REDIS_URL=REDIS_TEST_URL)
    client = TestClient(create_app(settings, database))
    body = {
        "org": w.org_id,
        "user": w.users["alice"],
        "workspace": "ws1",
        "grant": "create_sources",
    }
    assert client.post("/api/v1/check", json=body).status_code == 401
    bogus = {"Authorization": "Bearer idsync_admin_nope"}
    assert client.post("/api/v1/check", json=body, headers=bogus).status_code == 401
    mine = client.post("/api/v1/check", json=body, headers={"Authorization": f"Bearer {own}"})
    assert mine.status_code == 200 and mine.json()["status"] == "allow"
    theirs = client.post("/api/v1/check", json=body, headers={"Authorization": f"Bearer {other}"})
    assert theirs.status_code == 403
    batch = client.post(
        "/api/v1/check/batch",
        json={"org": w.org_id, "checks": [{"type": "spaces", "user": "u", "workspace": "ws1"}]},
        headers={"Authorization": f"Bearer {other}"},
    )
    assert batch.status_code == 403


def _org_with_alice(database: Database) -> tuple[World, str, str]:
    """alice (eng, editor in ws1), a built cache, and admin keys of this org and another."""
    import redis

    from models.db.admin_keys import create_admin_key
    from models.db.tables import Organization
    from models.db.tokens import get_or_create_org

    w = World.alice_edits(database, redis.Redis.from_url(REDIS_TEST_URL))
    with database.write() as session:
        own = create_admin_key(session, session.get_one(Organization, w.org_id))
        other = create_admin_key(session, get_or_create_org(session, f"other-{w.org_id[:8]}"))
    return w, own, other


def _client(database: Database, **env: str) -> TestClient:
    settings = Settings(CACHE_REDIS_URL=REDIS_TEST_URL, IDSYNC_CHECK_API_TOKEN="t0k", **env)  # type: ignore[arg-type]
    return TestClient(create_app(settings, database))


def test_check_bodies_are_strict_an_unknown_field_is_422_naming_it(database: Database) -> None:
    w, _own, _other = _org_with_alice(database)
    client = _client(database)
    auth = {"Authorization": "Bearer t0k"}
    base = {"org": w.org_id, "user": w.users["alice"], "workspace": "ws1"}
    cases = [
        ("/api/v1/check", {**base, "grant": "create_sources", "spaceId": "uk"}, "spaceId"),
        (
            "/api/v1/check",
            {**base, "grant": "edit_audiences", "resource": {"type": "audience", "spaceid": "x"}},
            "resource.spaceid",
        ),
        ("/api/v1/check/spaces", {**base, "grant": "read"}, "grant"),
        (
            "/api/v1/check/sync",
            {**base, "source": "s", "destination": "d", "action": "configure", "space": "x"},
            "space",
        ),
        (
            "/api/v1/check/batch",
            {
                "org": w.org_id,
                "checks": [
                    {"type": "check", "user": "u", "workspace": "ws1", "grant": "read", "x": 1}
                ],
            },
            "checks[0].check.x",
        ),
        ("/api/v1/check/batch", {"org": w.org_id, "checks": [], "min_rev": 3}, "min_rev"),
    ]
    for path, body, field in cases:
        resp = client.post(path, json=body, headers=auth)
        assert resp.status_code == 422, (path, resp.text)
        assert resp.json()["field"] == field, resp.json()
        assert "Extra inputs are not permitted" in resp.json()["detail"]


def test_org_is_implied_by_an_admin_key_and_named_by_id_or_name(database: Database) -> None:
    from models.db.tables import Organization

    w, own, other = _org_with_alice(database)
    with database.read() as session:
        name = session.get_one(Organization, w.org_id).name
    client = _client(database)
    question = {"user": w.users["alice"], "workspace": "ws1", "grant": "create_sources"}
    mine = {"Authorization": f"Bearer {own}"}
    for org in ({}, {"org": w.org_id}, {"org": name}):
        resp = client.post("/api/v1/check", json={**question, **org}, headers=mine)
        assert resp.status_code == 200 and resp.json()["status"] == "allow", resp.text
    wrong = client.post(
        "/api/v1/check",
        json={**question, "org": w.org_id},
        headers={"Authorization": f"Bearer {other}"},
    )
    assert wrong.status_code == 403 and wrong.json()["field"] == "org"
    assert "belongs to organization 'other-" in wrong.json()["detail"]
    service = {"Authorization": "Bearer t0k"}
    missing = client.post("/api/v1/check", json=question, headers=service)
    assert missing.status_code == 422 and missing.json()["field"] == "org"
    by_name = client.post("/api/v1/check", json={**question, "org": name}, headers=service)
    assert by_name.json()["status"] == "allow"
    nobody = client.post("/api/v1/check", json={**question, "org": "no-such-org"}, headers=service)
    assert nobody.status_code == 404 and nobody.json()["field"] == "org"


def test_admin_key_checks_run_no_sql_once_the_key_is_verified(database: Database) -> None:
    """...and the key's use is recorded (``last_used_at``) without the check waiting."""
    import time

    from sqlalchemy import event, select

    from models.db.config_tables import AdminKey

    w, own, _other = _org_with_alice(database)
    body = {"user": w.users["alice"], "workspace": "ws1", "grant": "create_sources"}
    headers = {"Authorization": f"Bearer {own}"}

    def last_used() -> object:
        with database.read() as s:
            return s.scalar(select(AdminKey.last_used_at).where(AdminKey.org_id == w.org_id))

    assert last_used() is None
    with _client(database, IDSYNC_SCIM_TOKEN_CACHE_S="30") as client:
        assert client.post("/api/v1/check", json=body, headers=headers).json()["allowed"]
        deadline = time.monotonic() + 5
        while last_used() is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        statements: list[str] = []

        def record(*args: object) -> None:
            statements.append(str(args[2]))

        event.listen(database.engine, "before_cursor_execute", record)
        try:
            for _ in range(20):
                assert client.post("/api/v1/check", json=body, headers=headers).json()["allowed"]
        finally:
            event.remove(database.engine, "before_cursor_execute", record)
    assert statements == []


def test_a_set_change_is_never_answered_from_the_kept_copy(database: Database) -> None:
    """The client keeps group-set values between calls; an overwrite raises the set
    version, so the next check reads the new value (no window)."""
    import redis

    from models.cache.client import CheckClient
    from models.cache.layout import decode_user, encode_set
    from models.cache.profiles import SetPayload

    w, _own, _other = _org_with_alice(database)
    cache = redis.Redis.from_url(REDIS_TEST_URL)
    writer = CacheWriter(cache, w.org_id)
    checks = CheckClient(cache, w.org_id)
    alice = w.users["alice"]
    assert checks.check(alice, "ws1", "create_sources").allowed
    before = checks.round_trips
    assert checks.check(alice, "ws1", "create_sources").allowed
    assert checks.round_trips == before + 1  # kept: the READ script alone
    gen = writer.meta().gen
    assert gen is not None
    stored = cache.hget(writer.keys.users(gen), alice)
    assert isinstance(stored, bytes)
    skey, rev = decode_user(stored.decode())
    writer.put(rev + 1, sets=[SetPayload(skey, encode_set(rev + 1, {}), {})])
    denied = checks.check(alice, "ws1", "create_sources")
    assert denied.status == "deny" and denied.reason == "no_role_in_workspace"


def test_an_unknown_workspace_is_an_error_naming_it_an_unknown_user_a_deny(
    database: Database,
) -> None:
    """A typo in a workspace id is an error (422 naming it, as explain's), from the cache
    and from SQL;
    a workspace created after the build is known once the worker's catch-up passed it;
    unknown users stay a deny; a cache whose workspace set was never written refuses
    nothing."""
    import redis

    from models.cache.client import CheckClient
    from models.cache.results import UnknownWorkspaceError
    from worker.lanes import PRIORITY
    from worker.pipeline import drain

    w, _own, _other = _org_with_alice(database)
    cache = redis.Redis.from_url(REDIS_TEST_URL)
    writer = CacheWriter(cache, w.org_id)
    client = _client(database)
    auth = {"Authorization": "Bearer t0k"}
    alice = w.users["alice"]
    body = {"org": w.org_id, "user": alice, "workspace": "ws9", "grant": "create_sources"}
    for path, extra in (("/api/v1/check", {}), ("/api/v1/check", {"min_revision": 10**9})):
        resp = client.post(path, json={**body, **extra}, headers=auth)  # cache, then SQL
        assert resp.status_code == 422, resp.text
        assert resp.json() == {
            "detail": "no workspace 'ws9' in this organization",
            "field": "workspace",
        }
    batch = client.post(
        "/api/v1/check/batch",
        headers=auth,
        json={
            "org": w.org_id,
            "checks": [
                {"type": "check", "user": alice, "workspace": "ws1", "grant": "create_sources"},
                {"type": "spaces", "user": alice, "workspace": "ws9"},
            ],
        },
    )
    assert batch.status_code == 422 and batch.json()["field"] == "checks[1].workspace"
    one = client.post(
        "/api/v1/check/batch",
        headers=auth,
        json={"org": w.org_id, "checks": [{"type": "spaces", "user": alice, "workspace": "ws9"}]},
    )
    assert one.status_code == 422 and one.json()["field"] == "checks[0].workspace"
    nobody = client.post("/api/v1/check", json={**body, "user": "nobody", "workspace": "ws1"})
    assert nobody.status_code == 401  # no credential: refused before anything is read
    nobody = client.post(
        "/api/v1/check", json={**body, "user": "nobody", "workspace": "ws1"}, headers=auth
    )
    assert nobody.json()["status"] == "deny" and nobody.json()["reason"] == "unknown_user"
    checks = CheckClient(cache, w.org_id)
    with pytest.raises(UnknownWorkspaceError) as raised:
        checks.check(alice, "ws9", "create_sources")
    assert raised.value.field == "workspace" and "'ws9'" in raised.value.message

    w.workspace("ws9")  # created after the build: known once the catch-up passed it
    drain(database, writer, w.org_id, PRIORITY)
    known = checks.check(alice, "ws9", "create_sources")
    assert known.status == "deny" and known.reason == "no_role_in_workspace"
    assert client.post("/api/v1/check", json=body, headers=auth).json()["status"] == "deny"

    gen = writer.meta().gen
    assert gen is not None
    cache.delete(writer.keys.workspaces(gen))  # a cache built before the set existed
    assert checks.check(alice, "ws8", "create_sources").status == "deny"


def test_check_answers_are_counted_by_outcome_with_their_latency(database: Database) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    w, _own, _other = _org_with_alice(database)
    auth = {"Authorization": "Bearer t0k"}
    alice = w.users["alice"]
    body = {"org": w.org_id, "user": alice, "workspace": "ws1", "grant": "create_sources"}

    def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    with _client(database) as client:
        before = samples(client.get("/metrics").text)
        assert client.post("/api/v1/check", json=body, headers=auth).json()["status"] == "allow"
        denied = {**body, "grant": "manage_workspace"}
        assert client.post("/api/v1/check", json=denied, headers=auth).json()["status"] == "deny"
        assert client.post("/api/v1/check", json={**body, "workspace": "ws9"}, headers=auth)
        batch = {
            "org": w.org_id,
            "checks": [
                {"type": "check", "user": alice, "workspace": "ws1", "grant": "create_sources"},
                {"type": "check", "user": "nobody", "workspace": "ws1", "grant": "read"},
            ],
        }
        assert client.post("/api/v1/check/batch", json=batch, headers=auth).status_code == 200
        after = samples(client.get("/metrics").text)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    answers = "idsync_check_answers_total"
    assert grew(answers, endpoint="check", outcome="allow") == 1
    assert grew(answers, endpoint="check", outcome="deny") == 1
    assert grew(answers, endpoint="check", outcome="error") == 1  # the unknown workspace
    assert grew(answers, endpoint="batch", outcome="allow") == 1
    assert grew(answers, endpoint="batch", outcome="deny") == 1
    assert grew("idsync_check_duration_seconds_count", endpoint="check") == 3
    assert grew("idsync_check_duration_seconds_count", endpoint="batch") == 1


def test_an_admin_key_whose_window_ended_is_verified_once_for_all_waiting(
    database: Database,
) -> None:
    import asyncio

    from starlette.requests import Request

    from idsync.check_api import CheckAuth
    from models.db.admin_keys import AdminIdentity

    w, own, _other = _org_with_alice(database)
    lookups: list[str] = []

    class Counted(CheckAuth):
        def _verify(self, given: str) -> AdminIdentity | None:
            lookups.append(given)
            return super()._verify(given)

    auth = Counted(None, database, ttl_s=30)
    scope = {"type": "http", "headers": [(b"authorization", f"Bearer {own}".encode())]}

    async def eight() -> list[str]:
        found = await asyncio.gather(*(auth.identity(Request(scope)) for _ in range(8)))
        return [f.org_id for f in found if f is not None]

    assert asyncio.run(eight()) == [w.org_id] * 8
    assert lookups == [own]  # one SQL lookup for the eight requests


@pytest.mark.parametrize("local", ["true", "false"])
def test_repeated_checks_come_from_memory_unless_local_answers_are_off(
    database: Database, local: str
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    w, _own, _other = _org_with_alice(database)
    auth = {"Authorization": "Bearer t0k"}
    body = {"org": w.org_id, "user": w.users["alice"], "workspace": "ws1", "grant": "read"}

    def from_memory(client: TestClient) -> float:
        return sum(
            s.value
            for family in text_string_to_metric_families(client.get("/metrics").text)
            for s in family.samples
            if s.name == "idsync_check_answers_from_memory_total"
            and s.labels.get("endpoint") == "check"
        )

    with _client(database, IDSYNC_CHECK_LOCAL_ANSWERS=local) as client:
        before = from_memory(client)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # the invalidation connection comes up first
            answer = client.post("/api/v1/check", json=body, headers=auth).json()
            assert answer["status"] == "allow"
            if from_memory(client) > before:
                break
            time.sleep(0.02)
        if local == "true":
            assert from_memory(client) > before
        else:
            assert from_memory(client) == before
