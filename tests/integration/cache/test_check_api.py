"""HTTP check API: single, sync, spaces, batch, explain; unknown on an unbuilt cache."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from idsync.app import create_app
from idsync.settings import Settings
from models.cache.writer import CacheWriter
from models.db.database import Database
from tests.conftest import REDIS_TEST_URL
from tests.integration.cache.world import World
from worker.rebuild import rebuild

pytestmark = [pytest.mark.redis]


def test_check_api(database: Database) -> None:
    import redis

    cache = redis.Redis.from_url(REDIS_TEST_URL)
    w = World.create(database)
    w.workspace("ws1", spaces_enabled=True)
    w.user("alice")
    w.group("eng", ["alice"])
    w.bind("eng", "ws1", "editor")
    settings = Settings(CACHE_REDIS_URL=REDIS_TEST_URL, IDSYNC_CHECK_API_TOKEN="t0k")  # type: ignore[call-arg]
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
    w = World.create(database)
    w.workspace("ws1")
    w.user("alice")
    w.group("eng", ["alice"])
    w.bind("eng", "ws1", "editor")
    rebuild(database, CacheWriter(cache, w.org_id), w.org_id)
    with database.write() as session:
        own = create_admin_key(session, session.get_one(Organization, w.org_id))
        other = create_admin_key(session, get_or_create_org(session, "someone-else"))
    # No service token configured: anonymous callers are still refused.
    settings = Settings(CACHE_REDIS_URL=REDIS_TEST_URL)  # type: ignore[call-arg]
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
