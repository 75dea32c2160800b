"""Metrics end to end: SCIM writes and checks on the API, a recompute on a real Celery
worker (prefork, two pool processes) serving its own /metrics; the freshness-lag gauge
rises while no worker runs and falls to 0 once it has caught up. Also an IdP pull whose
page fails midway shows `failing`, with the reason, in sync status."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import redis
import respx
from fastapi.testclient import TestClient

from idsync.app import create_app
from models.cache.writer import CacheWriter
from models.db.admin_keys import create_admin_key
from models.db.database import Database
from models.db.tables import Organization
from models.db.tokens import create_scim_token
from models.settings import Settings
from tests.integration.cache.world import World
from tests.integration.worker.conftest import BROKER_URL, CACHE_URL, WorkerProcess, wait_until
from tests.support.scim_client import user_body
from worker.idp.connection_runs import pull_from_settings
from worker.rebuild import rebuild


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        head = line.split(" ")[0]
        if head != name and not head.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tokens(db: Database, org_id: str) -> tuple[str, str]:
    with db.write() as session:
        org = session.get(Organization, org_id)
        assert org is not None
        return create_scim_token(session, org, "Okta"), create_admin_key(session, org)


def test_counters_and_the_lag_gauge_move_with_writes_checks_and_a_recompute(
    pg_database: Database, cache: redis.Redis, workers: WorkerProcess
) -> None:
    world = World.create(pg_database, "metrics-org")
    world.workspace("ws1")
    world.group("eng", [])
    world.bind("eng", "ws1", "editor")
    rebuild(pg_database, CacheWriter(cache, world.org_id), world.org_id)
    scim_token, admin_key = _tokens(pg_database, world.org_id)
    settings = Settings(REDIS_URL=BROKER_URL, CACHE_REDIS_URL=CACHE_URL)
    app = create_app(settings, db=pg_database)
    with TestClient(app, base_url="http://idsync.test") as client:
        scim = {"Authorization": f"Bearer {scim_token}", "Content-Type": "application/scim+json"}
        admin = {"Authorization": f"Bearer {admin_key}"}

        def scrape() -> str:
            app.state.metrics_state.invalidate()
            answer = client.get("/metrics")
            assert answer.status_code == 200
            text: str = answer.text
            return text

        base = scrape()  # counters are per process: compare with what came before

        def grew(text: str, name: str, **labels: str) -> float:
            return _metric(text, name, **labels) - _metric(base, name, **labels)

        # writes while no worker runs: the cache falls behind, and the gauges say so
        uids = [
            client.post("/scim/v2/Users", json=user_body(f"m{i}@x.io"), headers=scim).json()["id"]
            for i in range(3)
        ]
        group = world.groups["eng"]
        patched = client.patch(
            f"/scim/v2/Groups/{group}",
            json={
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "add", "path": "members", "value": [{"value": uids[0]}]}],
            },
            headers=scim,
        )
        assert patched.status_code == 204
        check = client.post(
            "/api/v1/check",
            json={"user": uids[0], "workspace": "ws1", "grant": "create_sources"},
            headers=admin,
        )
        assert check.status_code == 200, check.text
        behind = scrape()
        assert _metric(behind, "idsync_org_revision_lag", org="metrics-org") >= 4
        assert _metric(behind, "idsync_org_freshness_lag_seconds", org="metrics-org") > 0
        assert _metric(behind, "idsync_freshness_lag_seconds_max") > 0
        assert _metric(behind, "idsync_dirty_backlog") >= 1
        assert _metric(behind, "idsync_queue_length") >= 1
        assert _metric(behind, "idsync_workers_live") == 0
        assert _metric(behind, "idsync_org_cache_built", org="metrics-org") == 1
        counted = {"route": "/scim/v2/Users", "method": "POST", "status": "201"}
        assert grew(behind, "idsync_http_requests_total", **counted) == 3
        patches = {"route": "/scim/v2/Groups/{id}", "status": "204"}
        assert grew(behind, "idsync_http_requests_total", **patches) == 1
        assert grew(behind, "idsync_http_requests_total", route="/api/v1/check", status="200") == 1

        # a worker catches up: the lag falls to 0, and its own /metrics counts the tasks
        port = _free_port()
        workers.start(IDSYNC_WORKER_METRICS_PORT=str(port))
        wait_until(lambda: _metric(scrape(), "idsync_org_revision_lag", org="metrics-org") == 0)
        caught_up = scrape()
        assert _metric(caught_up, "idsync_freshness_lag_seconds_max") == 0
        assert _metric(caught_up, "idsync_dirty_backlog") == 0
        assert _metric(caught_up, "idsync_workers_live") >= 1

        def worker_metrics() -> str:
            return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text

        def drained() -> Any:
            text = worker_metrics()
            runs = _metric(text, "idsync_task_duration_seconds_count", task="idsync.drain.bulk")
            runs += _metric(
                text, "idsync_task_duration_seconds_count", task="idsync.drain.priority"
            )
            return runs >= 1 and text

        text = wait_until(drained, timeout=20)
        assert _metric(text, "idsync_task_failures_total") == 0  # nothing failed for good
        assert _metric(text, "idsync_task_duration_seconds_sum") > 0


@respx.mock
def test_a_pull_whose_page_fails_midway_is_failing_in_sync_status(
    database: Database,
) -> None:
    world = World.create(database, "pulled")
    base = "https://idp.example.com/scim/v2"

    def users(request: httpx.Request) -> httpx.Response:
        start = int(request.url.params.get("startIndex", "1"))
        if start > 1:
            return httpx.Response(403, json={"detail": "Bearer s3cret-token is not allowed"})
        return httpx.Response(
            200,
            json={
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                "totalResults": 3,
                "startIndex": 1,
                "itemsPerPage": 1,
                "Resources": [{"id": "up-1", "userName": "u1@x.io", "active": True}],
            },
        )

    respx.get(f"{base}/Users").mock(side_effect=users)
    respx.get(f"{base}/Groups").mock(
        return_value=httpx.Response(200, json={"totalResults": 0, "Resources": []})
    )
    settings = Settings(IDSYNC_IDP_KIND="scim", IDSYNC_IDP_URL=base, IDSYNC_IDP_ORG=world.org_id)
    report = pull_from_settings(settings, database)
    assert report["complete"] is False
    _, admin_key = _tokens(database, world.org_id)
    app = create_app(Settings(), db=database)
    with TestClient(app, base_url="http://idsync.test") as client:
        status = client.get("/api/v1/sync/status", headers={"Authorization": f"Bearer {admin_key}"})
        assert status.status_code == 200, status.text
        body = status.json()
        pull = body["idp_pull"]
        assert pull["verdict"]["state"] == "failing"
        assert (
            "the last pull failed (upstream HTTP 403), nothing was applied"
            in (pull["verdict"]["reason"])
        )
        assert pull["last_run"]["status"] == "failed" and pull["last_run"]["upstream_status"] == 403
        assert pull["last_run"]["users_created"] == 0 and pull["connection"] == "env"
        assert "s3cret" not in status.text
        assert body["verdict"]["state"] == "failing"
        assert (
            'idsync_idp_pull_runs_total{connection="env",outcome="failed"}'
            in client.get("/metrics").text
        )
