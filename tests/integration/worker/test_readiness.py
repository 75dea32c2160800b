"""/readyz against real parts: a real worker's heartbeat, the cache-built marker, and
a Redis that does not answer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from idsync.app import create_app
from models.db.database import Database
from models.db.tokens import create_scim_token, get_or_create_org
from models.settings import Settings
from tests.integration.worker.conftest import WorkerProcess, wait_until
from worker.heartbeat import STALE_AFTER_S


@pytest.fixture
def client(pg_database: Database, settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db=pg_database)) as c:
        yield c


def _parts(client: TestClient) -> tuple[int, dict[str, dict[str, str]]]:
    r = client.get("/readyz")
    return r.status_code, r.json()["parts"]


def test_ready_only_with_a_live_worker_and_a_built_cache(
    client: TestClient,
    pg_database: Database,
    workers: WorkerProcess,
    broker: redis.Redis,
    cache: redis.Redis,
) -> None:
    code, parts = _parts(client)
    assert code == 503
    assert parts["worker"] == {
        "status": "fail",
        "reason": f"no worker heartbeat in the last {STALE_AFTER_S:g} s",
    }
    assert parts["database"]["status"] == parts["broker"]["status"] == "ok"
    assert parts["cache_built"]["status"] == "ok"  # no organization has data yet

    with pg_database.write() as session:
        token = create_scim_token(session, get_or_create_org(session, "acme"), "test")
    made = client.post(
        "/scim/v2/Users",
        json={"userName": "ada@example.com"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert made.status_code == 201
    code, parts = _parts(client)
    assert parts["cache_built"]["status"] == "fail"
    assert parts["cache_built"]["reason"].startswith("not built for acme: checks answer unknown")

    proc = workers.start()
    # the worker beats, and its sweep builds acme's cache
    code, parts = wait_until(lambda: (r := _parts(client))[0] == 200 and r, timeout=60)
    assert parts["worker"]["reason"].startswith("1 alive: test0-")
    assert parts["cache_built"]["reason"] == "built for all 1 organization(s) with data"

    workers.kill(proc)  # SIGKILL: no goodbye; the heartbeat goes stale
    code, parts = wait_until(
        lambda: (r := _parts(client))[0] == 503 and r, timeout=STALE_AFTER_S + 10
    )
    assert parts["worker"]["status"] == "fail"


def test_unreachable_redis_fails_broker_cache_and_worker(
    pg_database: Database, settings: Settings
) -> None:
    dead = "redis://:hunter2@127.0.0.1:1/0"
    bad = settings.model_copy(update={"redis_url": dead, "cache_redis_url": None})
    with TestClient(create_app(bad, db=pg_database)) as c:
        r = c.get("/readyz")
    assert r.status_code == 503
    parts = r.json()["parts"]
    assert parts["broker"]["status"] == "fail"
    assert parts["broker"]["reason"].startswith("redis://:***@127.0.0.1:1/0: ConnectionError")
    assert parts["cache"]["status"] == "fail"
    assert parts["worker"]["reason"] == "unknown: the broker does not answer"
    assert "hunter2" not in r.text
