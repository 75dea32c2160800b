"""Issue 10: a full application of the mapping rules is a worker job, so the admin
request answers in bounded time whatever rules x groups is.

``POST /api/v1/mapping-rules/apply`` answers 202 with a job (no rule evaluated in the
request); the ``idsync.rules.apply`` task (real Celery worker, real Redis, PostgreSQL)
applies the rules chunk by chunk and the bindings converge to what one full
application makes. The plain functions (``worker.rule_jobs``) are tested for resuming,
superseding and the stored result that ``GET /mapping-rules/problems`` serves."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from idsync.admin_api import config_routes
from idsync.app import create_app
from models.db import rule_application
from models.db.admin_keys import create_admin_key
from models.db.config_store import (
    RuleSpec,
    WorkspaceSpec,
    WriteContext,
    create_rule,
    create_workspace,
)
from models.db.config_tables import RoleBindingRow
from models.db.database import Database
from models.db.rule_application import apply_in_chunks, apply_mapping_rules
from models.db.tables import Change, Group
from models.db.tokens import get_or_create_org
from models.settings import Settings
from tests.integration.worker.conftest import WorkerProcess, wait_until
from worker import rule_jobs
from worker.broker import ROUTES, TASK_RECONCILE, sender_app
from worker.pipeline import RULES_ACTOR

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

RULES = 20
GROUPS = 3_000
WORKSPACES = 4


class Admin:
    def __init__(self, client: TestClient, key: str, org_id: str) -> None:
        self.client, self.key, self.org_id = client, key, org_id

    def call(self, method: str, path: str) -> Any:
        return self.client.request(
            method, f"/api/v1{path}", headers={"Authorization": f"Bearer {self.key}"}
        )


@pytest.fixture
def admin(pg_database: Database, settings: Settings) -> Iterator[Admin]:
    with pg_database.write() as s:
        org = get_or_create_org(s, "acme")
        key = create_admin_key(s, org, "test")
        org_id = org.id
    app = create_app(settings, db=pg_database)
    with TestClient(app, base_url="http://idsync.test") as client:
        yield Admin(client, key, org_id)


def _setup(db: Database, org_id: str, groups: int) -> None:
    """Workspaces and ``RULES`` regex rules first, then ``groups`` groups inserted
    straight into SQL (no change rows: nothing applied the rules to them)."""
    ctx = WriteContext(org_id=org_id, actor="test")
    with db.write() as s:
        for w in range(WORKSPACES):
            create_workspace(s, ctx, WorkspaceSpec(id=f"w{w}"))
        for i in range(RULES):
            create_rule(
                s,
                ctx,
                RuleSpec(
                    id=f"r{i:02d}",
                    attribute="displayName",
                    match="regex",
                    pattern=rf"g-{i:02d}-[a-z0-9-]+",
                    workspace=f"w{i % WORKSPACES}",
                    role="viewer",
                ),
            )
        rows = [
            {
                "id": str(uuid.uuid4()),
                "org_id": org_id,
                "display_name": f"g-{n % (RULES + 1):02d}-{n}",  # % 21: some match no rule
                "display_name_norm": f"g-{n % (RULES + 1):02d}-{n}",
                "attrs": {},
            }
            for n in range(groups)
        ]
        s.execute(insert(Group), rows)


def _matching(groups: int) -> int:
    """Groups of ``_setup`` a rule matches (names g-20-*, every 21st, match none)."""
    return sum(1 for n in range(groups) if n % (RULES + 1) != RULES)


def _rule_made(db: Database, org_id: str) -> int:
    with db.read() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(RoleBindingRow)
                .where(RoleBindingRow.org_id == org_id, RoleBindingRow.source != "manual")
            )
            or 0
        )


def _full_application_is_a_no_op(db: Database, org_id: str) -> None:
    with db.sessions() as s:
        tx = s.begin()
        try:
            app = apply_mapping_rules(s, org_id, actor="t", record=False)
        finally:
            tx.rollback()
    assert (app.created, app.removed) == ([], [])


@pytest.mark.worker
def test_apply_answers_202_at_once_for_a_large_org_and_the_bindings_converge(
    pg_database: Database, admin: Admin, workers: WorkerProcess
) -> None:
    db = pg_database
    _setup(db, admin.org_id, GROUPS)
    expected = _matching(GROUPS)
    assert _rule_made(db, admin.org_id) == 0
    workers.start()

    started = time.monotonic()
    resp = admin.call("post", "/mapping-rules/apply")
    answered = time.monotonic() - started
    assert resp.status_code == 202, resp.text
    assert resp.headers["location"] == "/api/v1/mapping-rules/apply"
    job = resp.json()
    assert job["state"] in ("queued", "running") and job["revision"] > 0
    # the request evaluated nothing: bounded whatever rules x groups is
    assert answered < 2.0, answered
    print(f"POST /mapping-rules/apply answered 202 in {answered * 1000:.0f} ms")

    def finished() -> Any:
        body = admin.call("get", "/mapping-rules/apply").json()
        last = body["last"]
        return last if last and last["job"] == job["job"] else None

    done = wait_until(finished, timeout=120, every=0.2)
    assert done["state"] == "done" and done["finished_at"] is not None
    assert done["groups"] == GROUPS
    assert done["created"] == expected and done["removed"] == 0
    assert done["evaluations"] == RULES * GROUPS
    chunk = rule_application.chunk_groups(RULES)
    assert done["chunks"] >= GROUPS // chunk
    assert done["change_rows"] >= 1
    print(
        f"{RULES} rules x {GROUPS} groups: {done['evaluations']} evaluations in "
        f"{done['chunks']} chunks, {done['seconds']} s on the worker"
    )
    assert _rule_made(db, admin.org_id) == expected
    _full_application_is_a_no_op(db, admin.org_id)
    # each chunk that changed something recorded its own change row naming its groups
    with db.read() as s:
        rows = s.scalars(
            select(Change).where(
                Change.org_id == admin.org_id, Change.kind == "config.rules.applied"
            )
        ).all()
    assert len(rows) == done["change_rows"]
    assert sum(len(r.group_ids) for r in rows) == expected

    # problems: too many pairs to evaluate live -> the job's result, saying which
    problems = admin.call("get", "/mapping-rules/problems").json()
    assert problems["source"] == "last_application"
    assert (problems["job"], problems["evaluations"]) == (job["job"], 0)
    assert problems["revision"] == job["revision"] and problems["computed_at"] is not None

    # again: idempotent, no change row
    again = admin.call("post", "/mapping-rules/apply").json()
    done = wait_until(
        lambda: (
            (b := admin.call("get", "/mapping-rules/apply").json()["last"])
            and b["job"] == again["job"]
            and b
        ),
        timeout=120,
        every=0.2,
    )
    assert (done["created"], done["removed"], done["change_rows"]) == (0, 0, 0)

    # the scheduled reconcile requests the same job (as the worker's actor)
    sender = sender_app(Settings(), workers.env()["REDIS_URL"])
    sender.send_task(TASK_RECONCILE, args=[admin.org_id], queue=ROUTES[TASK_RECONCILE]["queue"])
    by_reconcile = wait_until(
        lambda: (
            (b := admin.call("get", "/mapping-rules/apply").json()["last"])
            and b["actor"] == RULES_ACTOR
            and b
        ),
        timeout=120,
        every=0.2,
    )
    assert (by_reconcile["groups"], by_reconcile["created"]) == (GROUPS, 0)


def _sender(org_id: str) -> tuple[list[str], rule_jobs.Send]:
    sent: list[str] = []

    def send(org: str, job: str) -> None:
        assert org == org_id
        sent.append(job)

    return sent, send


def test_job_resumes_from_its_cursor_and_a_superseded_job_stops(
    pg_database: Database, cache: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = pg_database
    with db.write() as s:
        org_id = get_or_create_org(s, "acme").id
    _setup(db, org_id, 200)
    monkeypatch.setattr(rule_application, "CHUNK_EVALUATIONS", RULES * 50)  # 50 groups
    sent, send = _sender(org_id)

    first, new = rule_jobs.request(cache, send, org_id, revision=7, actor="a")
    assert new and sent == [first["job"]] and first["state"] == "queued"
    # requested again while queued: the same job, nothing sent
    same, new = rule_jobs.request(cache, send, org_id, revision=8, actor="a")
    assert not new and same["job"] == first["job"] and len(sent) == 1

    run = rule_jobs.run(db, cache, org_id, first["job"], budget_s=0)
    assert (run.outcome, run.chunks, run.again) == ("continued", 1, True)
    current, last = rule_jobs.status(cache, org_id)
    assert (current["state"], current["groups"], last) == ("running", "50", {})
    made_by_first = int(current["created"])
    assert made_by_first > 0

    # the reconcile's request leaves a running job alone; an admin's supersedes it
    kept, new = rule_jobs.request(cache, send, org_id, revision=9, actor="r", restart_running=False)
    assert not new and kept["job"] == first["job"]
    second, new = rule_jobs.request(cache, send, org_id, revision=9, actor="b")
    assert new and second["job"] != first["job"] and second["groups"] == "0"
    assert rule_jobs.run(db, cache, org_id, first["job"]).outcome == "superseded"

    # a busy lease sends the task back later
    lock = cache.lock(rule_jobs.JobKeys.of(org_id).lease, timeout=5)
    assert lock.acquire(blocking=False)
    assert rule_jobs.run(db, cache, org_id, second["job"]).outcome == "busy"
    lock.release()

    outcomes = []
    while True:
        run = rule_jobs.run(db, cache, org_id, second["job"], budget_s=0)
        outcomes.append(run.outcome)
        if not run.again:
            break
    # 200 groups, 50 a chunk; a full last chunk cannot tell it was the last: one more
    # (empty) chunk finds nothing after it
    assert outcomes == ["continued"] * 4 + ["done"]
    current, last = rule_jobs.status(cache, org_id)
    assert current["state"] == last["state"] == "done" and last["job"] == second["job"]
    # the superseded job's chunk stays made; the new job makes the rest, nothing twice
    assert last["groups"] == "200" and made_by_first + int(last["created"]) == _matching(200)
    assert _rule_made(db, org_id) == _matching(200)
    _full_application_is_a_no_op(db, org_id)
    # a redelivered task of a finished job does nothing
    assert rule_jobs.run(db, cache, org_id, second["job"]).outcome == "superseded"


def test_chunked_application_equals_a_full_one(
    pg_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks of one group each make exactly what one transaction makes: stale rows of
    a deleted rule go, manual rows stay, every group is covered once."""
    db = pg_database
    with db.write() as s:
        org_id = get_or_create_org(s, "acme").id
    _setup(db, org_id, 60)
    with db.write() as s:
        gids = list(s.scalars(select(Group.id).where(Group.org_id == org_id).order_by(Group.id)))
        s.add(
            RoleBindingRow(
                org_id=org_id,
                group_id=gids[0],
                workspace_id="w0",
                role_id="editor",
                source="manual",
            )
        )
        s.add(
            RoleBindingRow(
                org_id=org_id, group_id=gids[1], workspace_id="w1", role_id="admin", source="gone"
            )
        )

    def bindings(s: Session) -> set[tuple[str, str, str, str]]:
        rows = s.execute(
            select(
                RoleBindingRow.group_id,
                RoleBindingRow.workspace_id,
                RoleBindingRow.role_id,
                RoleBindingRow.source,
            ).where(RoleBindingRow.org_id == org_id)
        )
        return {(g, w, r, src) for g, w, r, src in rows}

    def state() -> set[tuple[str, str, str, str]]:
        with db.read() as s:
            return bindings(s)

    with db.sessions() as s:  # what one transaction would make
        tx = s.begin()
        try:
            apply_mapping_rules(s, org_id, actor="t", record=False)
            s.flush()
            full = bindings(s)
        finally:
            tx.rollback()
    monkeypatch.setattr(rule_application, "CHUNK_EVALUATIONS", 1)  # one group a chunk
    dry = apply_in_chunks(db, org_id, actor="t", repair=False)
    assert dry.groups == 60 and len(dry.removed) == 1 and state() != full
    done = apply_in_chunks(db, org_id, actor="t")
    assert done.groups == 60 and sorted(done.created) == sorted(dry.created)
    assert state() == full
    assert (gids[0], "w0", "editor", "manual") in full
    assert not any(src == "gone" for *_, src in full)


def test_problems_live_within_the_budget_else_the_last_application(
    pg_database: Database,
    cache: redis.Redis,
    admin: Admin,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = pg_database
    ctx = WriteContext(org_id=admin.org_id, actor="test")
    with db.write() as s:
        s.execute(
            insert(Group),
            [
                {"id": str(uuid.uuid4()), "org_id": admin.org_id, "display_name": name,
                 "display_name_norm": name, "attrs": {}}
                for name in ("ds-nowhere-viewer", "ds-other-viewer")
            ],
        )  # fmt: skip
        create_rule(
            s,
            ctx,
            RuleSpec(
                id="ds",
                attribute="displayName",
                match="regex",
                pattern=r"ds-(?P<workspace>[a-z]+)-(?P<role>viewer)",
            ),
        )
    live = admin.call("get", "/mapping-rules/problems").json()
    assert live["source"] == "live" and live["evaluations"] == 2 and live["job"] is None
    assert sorted(p["message"] for p in live["problems"]) == [
        "no workspace matches 'nowhere'",
        "no workspace matches 'other'",
    ]
    assert live["bindings"] == [] and live["problems_total"] == 2

    monkeypatch.setattr(config_routes, "PROBLEMS_EVALUATION_BUDGET", 1)
    never = admin.call("get", "/mapping-rules/problems").json()
    assert (never["source"], never["problems"], never["bindings"]) == ("none", [], None)

    resp = admin.call("post", "/mapping-rules/apply")  # no worker here: run it below
    assert resp.status_code == 202, resp.text
    job = resp.json()["job"]
    while rule_jobs.run(db, cache, admin.org_id, job).again:
        pass
    stored = admin.call("get", "/mapping-rules/problems").json()
    assert (stored["source"], stored["job"], stored["evaluations"]) == ("last_application", job, 0)
    assert stored["problems"] == live["problems"] and stored["problems_total"] == 2
    status = admin.call("get", "/mapping-rules/apply").json()
    assert status["current"]["job"] == status["last"]["job"] == job
    assert status["last"]["problems"] == 2 and status["last"]["evaluations"] == 2


def test_apply_without_a_worker_is_503_in_the_api_shape(pg_database: Database) -> None:
    with pg_database.write() as s:
        org = get_or_create_org(s, "acme")
        key = create_admin_key(s, org, "test")
    settings = Settings(REDIS_URL=None, CACHE_REDIS_URL=None)
    app = create_app(settings, db=pg_database)  # no Redis: no worker to reach
    with TestClient(app, base_url="http://idsync.test") as client:
        h = {"Authorization": f"Bearer {key}"}
        for method in ("post", "get"):
            resp = client.request(method, "/api/v1/mapping-rules/apply", headers=h)
            assert resp.status_code == 503, resp.text
            assert resp.json()["field"] is None and "REDIS_URL" in resp.json()["detail"]
