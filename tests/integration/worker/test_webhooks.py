"""Webhook delivery end to end: SCIM and admin writes through the HTTP app, a real Celery
worker deriving and delivering events, a real HTTP receiver on localhost (verifying every
request with the sample of docs/events.md), PostgreSQL and Redis.

The beat's events sweep is played by a thread sending ``idsync.events.sweep`` every
second (what ``idsync beat`` does every ``IDSYNC_SWEEP_INTERVAL_S``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from idsync.app import create_app
from idsync.sync_status import sync_status
from models.db.admin_keys import create_admin_key
from models.db.database import Database
from models.db.event_tables import Event, WebhookDelivery, WebhookSubscription
from models.db.tokens import create_scim_token, get_or_create_org
from models.db.webhooks import NewSubscription, create_subscription, resume_subscription
from models.secret_box import generate_key
from models.settings import Settings
from tests.integration.worker.conftest import WorkerProcess, wait_until
from tests.support.scim_client import Scim, group_body, user_body
from tests.support.webhook_receiver import Receiver
from worker.broker import ROUTES, TASK_EVENTS_SWEEP, sender_app

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.worker]

KEY = generate_key()
SECRET = "receiver-secret-0123456789"
WORKER_ENV = {
    "IDSYNC_SECRET_KEY": KEY,
    "IDSYNC_WEBHOOK_TIMEOUT_S": "2",
    "IDSYNC_WEBHOOK_RETRY_MAX_S": "1",
    "IDSYNC_OUTBOUND_ALLOW_PRIVATE": "true",  # the receiver is on localhost
}
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@dataclass
class Setup:
    db: Database
    settings: Settings
    org_id: str
    scim: Scim
    client: TestClient
    admin_key: str
    receiver: Receiver
    sub_id: str

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        resp = self.client.request(
            method,
            f"/api/v1{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.admin_key}"},
        )
        assert resp.status_code < 300, resp.text
        return resp.json() if resp.content else None

    def log_ids(self) -> list[str]:
        with self.db.read() as s:
            return list(
                s.scalars(
                    select(Event.event_id).where(Event.org_id == self.org_id).order_by(Event.seq)
                )
            )

    def deliveries(self) -> dict[str, WebhookDelivery]:
        with self.db.read() as s:
            rows = s.scalars(
                select(WebhookDelivery).where(WebhookDelivery.subscription_id == self.sub_id)
            )
            return {d.event_id: d for d in rows}

    def subscription(self) -> WebhookSubscription:
        with self.db.read() as s:
            sub = s.get(WebhookSubscription, self.sub_id)
            assert sub is not None
            return sub

    def all_delivered(self) -> bool:
        """Every event of the log received (2xx) in order, and its outcome recorded."""
        ids = self.log_ids()
        if not ids or self.receiver.delivered_ids() != ids:
            return False
        log = self.deliveries()
        return all(i in log and log[i].status == "delivered" for i in ids)


@pytest.fixture
def beat(settings: Settings) -> Iterator[None]:
    app = sender_app(settings)
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(1.0):
            app.send_task(TASK_EVENTS_SWEEP, queue=ROUTES[TASK_EVENTS_SWEEP]["queue"])

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=5)


@pytest.fixture
def setup(
    pg_database: Database, settings: Settings, cache: redis.Redis, beat: None
) -> Iterator[Setup]:
    settings = settings.model_copy(update={"secret_key": SecretStr(KEY)})
    with pg_database.write() as s:
        org = get_or_create_org(s, "acme")
        token = create_scim_token(s, org, "t")
        key = create_admin_key(s, org, "t")
        org_id = org.id
    receiver = Receiver(SECRET)
    with pg_database.write() as s:
        sub = create_subscription(
            s, org_id, NewSubscription(receiver.url, [], SECRET), settings.secret_box(), start_at=0
        )
        sub_id = sub.id
    app = create_app(settings, db=pg_database)
    with TestClient(app, base_url="http://idsync.test") as client:
        yield Setup(
            pg_database,
            settings,
            org_id,
            Scim(client, token, org_id),
            client,
            key,
            receiver,
            sub_id,
        )
    receiver.stop()


def _scenario(env: Setup, users: int = 4) -> None:
    """SCIM pushes, a role change, a deactivation."""
    ids = [
        env.scim.post("/Users", user_body(f"u{i}@example.com")).json()["id"] for i in range(users)
    ]
    group = env.scim.post("/Groups", group_body("Engineering", ids[:2])).json()["id"]
    env.admin("POST", "/workspaces", {"id": "prod"})
    env.admin(
        "POST", "/bindings/roles", {"group_id": group, "workspace_id": "prod", "role_id": "editor"}
    )
    env.scim.patch(
        f"/Groups/{group}",
        {
            "schemas": [PATCH],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": ids[2]}]}],
        },
    )
    env.scim.patch(
        f"/Users/{ids[0]}",
        {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": False}]},
    )


def test_events_arrive_in_order_signed_and_retried(setup: Setup, workers: WorkerProcess) -> None:
    env = setup
    # the second request gets a 500, the third a 429: both retried, in place
    env.receiver.status_for = lambda n, _b: {1: 500, 2: 429}.get(n, 200)
    workers.start(2, **WORKER_ENV)
    _scenario(env)
    wait_until(env.all_delivered, 60)
    received = env.receiver.received
    assert all(r.verified for r in received), "every request verifies with the docs' sample"
    bodies = [json.loads(r.body) for r in received if r.status == 200]
    assert [b["sequence"] for b in bodies] == sorted(b["sequence"] for b in bodies)
    revisions = [b["revision"] for b in bodies]
    assert revisions == sorted(revisions)
    types = [b["type"] for b in bodies]
    assert types.count("user.created") == 4
    assert "user.deactivated" in types and "group.membership.added" in types
    granted = [b["data"] for b in bodies if b["type"] == "permissions.changed"]
    assert {g["workspace_id"] for g in granted} == {"prod"}
    assert all(g["granted"].get("roles") == ["editor"] for g in granted if g["granted"])
    retried = received[1].event_id
    assert [r.event_id for r in received[1:4]] == [retried] * 3  # the same id each time
    log = env.deliveries()[retried]
    assert (log.status, log.attempts, log.last_status_code) == ("delivered", 3, 200)
    assert env.subscription().failing_since is None


def test_a_4xx_is_not_retried(setup: Setup, workers: WorkerProcess) -> None:
    env = setup
    env.receiver.status_for = lambda n, _b: 400 if n == 0 else 200
    workers.start(2, **WORKER_ENV)
    _scenario(env, users=3)

    def done() -> bool:
        ids, log = env.log_ids(), env.deliveries()
        recorded = all(i in log and log[i].status in ("delivered", "failed") for i in ids)
        return len(ids) > 1 and env.receiver.delivered_ids() == ids[1:] and recorded

    wait_until(done, 60)
    refused = env.receiver.received[0].event_id
    assert [r.event_id for r in env.receiver.received].count(refused) == 1
    log = env.deliveries()[refused]
    assert (log.status, log.attempts, log.last_status_code) == ("failed", 1, 400)


def test_receiver_down_for_a_while_loses_nothing(setup: Setup, workers: WorkerProcess) -> None:
    env = setup
    workers.start(2, **WORKER_ENV)
    env.scim.post("/Users", user_body("first@example.com"))
    wait_until(env.all_delivered, 60)
    env.receiver.stop()
    _scenario(env)
    # attempts fail (connection refused) and are retried, nothing moves past them
    wait_until(
        lambda: any(d.attempts >= 2 and d.status == "retrying" for d in env.deliveries().values()),
        60,
    )
    sub = env.subscription()
    assert sub.last_error is not None and "Connect" in sub.last_error
    assert sub.state == "active"
    env.receiver.start()  # back, on the same port
    wait_until(env.all_delivered, 60)
    assert all(r.verified for r in env.receiver.received)


def test_worker_killed_mid_delivery_delivers_again_with_the_same_id(
    setup: Setup, workers: WorkerProcess
) -> None:
    env = setup
    env.receiver.hold_s = 1.5  # the worker waits for the answer: kill it meanwhile
    first = workers.start(2, **WORKER_ENV)
    env.scim.post("/Users", user_body("ada@example.com"))
    wait_until(lambda: env.receiver.received, 60)
    workers.kill(first)
    killed = env.receiver.received[0].event_id
    assert env.deliveries().get(killed) is None  # the outcome was never recorded
    env.receiver.hold_s = 0
    env.scim.post("/Users", user_body("bob@example.com"))
    workers.start(2, **WORKER_ENV)

    def recorded() -> bool:
        log = env.deliveries()
        return len(log) == 2 and all(d.status == "delivered" for d in log.values())

    wait_until(recorded, 90)
    ids = [r.event_id for r in env.receiver.received]
    assert ids.count(killed) >= 2  # delivered again, with the same id
    assert env.receiver.delivered_ids() == env.log_ids()


def test_a_long_failing_subscription_is_marked_failing_then_resumed(
    setup: Setup, workers: WorkerProcess
) -> None:
    env = setup
    env.receiver.status_for = lambda _n, _b: 503
    workers.start(2, **WORKER_ENV, IDSYNC_WEBHOOK_FAILING_AFTER_S="3")
    env.scim.post("/Users", user_body("ada@example.com"))
    wait_until(lambda: env.subscription().state == "failing", 60)
    status = sync_status(env.db, env.org_id, None)
    (hook,) = status["webhooks"]
    assert hook["verdict"]["state"] == "failing" and env.sub_id in hook["verdict"]["reason"]
    assert status["verdict"]["state"] == "failing"
    listed = env.admin("GET", "/webhooks")["webhooks"][0]
    assert listed["state"] == "failing" and listed["last_status_code"] == 503
    attempts = len(env.receiver.received)
    threading.Event().wait(3)
    assert len(env.receiver.received) <= attempts + 1  # no more attempts (one may be in flight)
    env.receiver.status_for = lambda _n, _b: 200
    with env.db.write() as s:
        resume_subscription(s, env.org_id, env.sub_id)
    wait_until(env.all_delivered, 60)
    assert env.subscription().state == "active"


def test_a_worker_without_the_secret_key_says_so_on_the_subscription(
    setup: Setup, workers: WorkerProcess
) -> None:
    env = setup
    workers.start(2, IDSYNC_WEBHOOK_TIMEOUT_S="2")  # no IDSYNC_SECRET_KEY
    env.scim.post("/Users", user_body("ada@example.com"))
    wait_until(lambda: "IDSYNC_SECRET_KEY" in (env.subscription().last_error or ""), 60)
    assert env.receiver.received == []
    listed = env.admin("GET", "/webhooks")["webhooks"][0]
    assert "IDSYNC_SECRET_KEY" in listed["last_error"]


def test_scripted_scenario_through_an_outage_and_a_worker_kill(
    setup: Setup, workers: WorkerProcess
) -> None:
    """The issue's acceptance scenario: SCIM pushes, a role change, a deactivation; the
    receiver verifies and de-duplicates; a worker is killed mid-delivery and the receiver
    is down for a while; in the end every event arrived once or more, in order."""
    env = setup
    seen: dict[str, int] = {}
    first = workers.start(2, **WORKER_ENV)
    env.receiver.hold_s = 1.0  # answers slowly: the kill lands while a POST is open
    _scenario(env)
    wait_until(lambda: env.receiver.received, 60)
    workers.kill(first)
    env.receiver.stop()  # and the receiver goes away for a while
    env.receiver.hold_s = 0
    more = env.scim.post("/Users", user_body("late@example.com")).json()["id"]
    env.scim.patch(
        f"/Users/{more}",
        {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": False}]},
    )
    workers.start(2, **WORKER_ENV)
    threading.Event().wait(3)  # attempts meet a closed port meanwhile
    env.receiver.start()
    wait_until(env.all_delivered, 120)
    for r in env.receiver.received:
        assert r.verified
        seen[r.event_id] = seen.get(r.event_id, 0) + 1
    assert list(seen) == env.log_ids()  # de-duplicated on the id: the log, in order
    assert max(seen.values()) >= 2  # the killed delivery came again, with the same id
    types = [json.loads(r.body)["type"] for r in env.receiver.received]
    assert {"user.created", "group.membership.added", "permissions.changed"} <= set(types)
    assert types.count("user.deactivated") >= 2


def test_a_receiver_inside_the_network_is_refused_unless_allowed(
    setup: Setup, workers: WorkerProcess
) -> None:
    env = setup
    workers.start(2, **{**WORKER_ENV, "IDSYNC_OUTBOUND_ALLOW_PRIVATE": "false"})
    env.scim.post("/Users", user_body("ada@example.com"))
    wait_until(lambda: "not public" in (env.subscription().last_error or ""), 60)
    assert env.receiver.received == []  # never reached
    assert env.subscription().cursor == 0  # retried, not skipped
