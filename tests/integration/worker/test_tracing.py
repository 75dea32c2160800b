"""Tracing end to end: a SCIM PATCH on the API (in process, its spans in memory), the
drain task on a real Celery worker (prefork, exporting OTLP/HTTP to a collector the
test runs) and the cache write are one trace; a second PATCH coalesced into the same
drain is linked from that drain's task span."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from functools import partial
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan
from opentelemetry.trace import SpanKind
from sqlalchemy import func, select

from idsync.app import create_app
from idsync.server_spans import ServerSpans, install_tracing
from models.cache.writer import CacheWriter
from models.db.database import Database
from models.db.tables import Change, Organization
from models.db.tokens import create_scim_token
from models.settings import Settings
from tests.integration.cache.world import World
from tests.integration.worker.conftest import BROKER_URL, CACHE_URL, WorkerProcess, wait_until
from tests.support.spans import (  # noqa: F401 - fixtures
    Collector,
    Received,
    by_name,
    collector,
    hex_ids,
    memory_spans,
)
from worker.rebuild import rebuild

PATCH_NAME = {
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{"op": "replace", "path": "name.givenName", "value": "Traced"}],
}


def _revision(db: Database, org_id: str) -> int:
    with db.read() as session:
        top = session.scalar(select(func.max(Change.revision)).where(Change.org_id == org_id))
    assert top is not None
    return int(top)


def _caught_up(writer: CacheWriter, revision: int) -> bool:
    return writer.meta().wm >= revision


def _only(spans: list[Any]) -> Any:
    assert len(spans) == 1, spans
    return spans[0]


def test_a_scim_write_its_drain_task_and_its_cache_write_are_one_trace(
    pg_database: Database,
    cache: redis.Redis,
    workers: WorkerProcess,
    memory_spans: Any,  # noqa: F811
    collector: Collector,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = World.create(pg_database, "trace-org")
    alice, bob = world.user("alice@x.io"), world.user("bob@x.io")
    rebuild(pg_database, CacheWriter(cache, world.org_id), world.org_id)
    with pg_database.write() as session:
        org = session.get(Organization, world.org_id)
        assert org is not None
        token = create_scim_token(session, org, "Okta")

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", collector.endpoint)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # the worker exports within 0.1 s
    app = create_app(Settings(REDIS_URL=BROKER_URL, CACHE_REDIS_URL=CACHE_URL), db=pg_database)
    assert install_tracing(app)  # the line create_app gains (idempotent)
    assert sum(getattr(m, "cls", None) is ServerSpans for m in app.user_middleware) == 1

    scim = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    with TestClient(app, base_url="http://idsync.test") as client:
        # no worker yet: the first PATCH sends the bulk drain, the second finds it on its way
        first = client.patch(f"/scim/v2/Users/{alice}", json=PATCH_NAME, headers=scim)
        assert first.status_code == 200, first.text
        first_revision = _revision(pg_database, world.org_id)
        second = client.patch(f"/scim/v2/Users/{bob}", json=PATCH_NAME, headers=scim)
        assert second.status_code == 200, second.text

    local = memory_spans.get_finished_spans()
    servers = [s for s in local if s.kind is SpanKind.SERVER]
    assert [s.name for s in servers] == ["PATCH /scim/v2/Users/{id}"] * 2
    server, coalesced = servers
    for s in servers:  # no user id anywhere in names or attributes
        assert s.parent is None
        assert s.attributes is not None
        assert s.attributes["http.route"] == "/scim/v2/Users/{id}"
        assert s.attributes["http.request.method"] == "PATCH"
        assert s.attributes["http.response.status_code"] == 200
        assert not any(uid in str(v) for v in s.attributes.values() for uid in (alice, bob))
    trace_id, server_id, _ = hex_ids(server)

    def in_trace(spans: list[Any], tid: str) -> list[Any]:
        return [s for s in spans if hex_ids(s)[0] == tid]

    mine = in_trace(local, trace_id)
    write = _only(by_name(mine, "idsync.db.write"))
    assert hex_ids(write)[2] == server_id
    assert write.attributes["idsync.change.revision"] == first_revision
    assert write.attributes["idsync.change.kinds"] == ("user.patched",)
    publish = _only(by_name(mine, "idsync.change.publish"))
    assert hex_ids(publish)[2] == server_id
    assert publish.attributes["idsync.change.revision"] == first_revision
    assert publish.attributes["idsync.drain.sent"] == ("b",)
    send = _only(by_name(mine, "send idsync.drain.bulk"))
    assert send.kind is SpanKind.PRODUCER
    assert hex_ids(send)[2] == hex_ids(publish)[1]

    other = _only(by_name(in_trace(local, hex_ids(coalesced)[0]), "idsync.change.publish"))
    assert other.attributes["idsync.drain.sent"] == ()
    assert other.attributes["idsync.drain.coalesced"] == ("b",)
    assert not by_name(in_trace(local, hex_ids(coalesced)[0]), "send idsync.drain.bulk")

    # the worker runs the drain in the same trace, and exports it to the collector
    workers.start()

    def received(name: str) -> list[Received]:
        return [s for s in collector.named(name) if s.trace_id == trace_id]

    # the task's span ends last (exported in a batch of its own, maybe a later one)
    run: Received = wait_until(lambda: received("run idsync.drain.bulk"), timeout=30)[0]
    cache_write = _only(received("idsync.cache.write"))
    assert run.kind == OtlpSpan.SPAN_KIND_CONSUMER
    assert run.parent_span_id == hex_ids(send)[1]
    assert run.service == "idsync-worker"
    assert run.attributes["idsync.org_id"] == world.org_id
    assert run.attributes["celery.state"] == "SUCCESS"
    recompute = _only(
        [s for s in collector.named("idsync.recompute") if s.parent_span_id == run.span_id]
    )
    assert recompute.trace_id == trace_id
    assert recompute.attributes["idsync.members"] == 2  # both PATCHed users, one batch
    assert cache_write.parent_span_id == recompute.span_id
    assert cache_write.attributes["idsync.cache.revision"] >= first_revision
    assert cache_write.attributes["idsync.cache.written"] >= 1

    # the coalesced PATCH: linked from the task span that recomputed its user
    assert (hex_ids(other)[0], hex_ids(other)[1], {"idsync.link": "coalesced write"}) in run.links
    assert all(link[0] != trace_id for link in run.links)  # never its own trace


def test_a_deactivation_traces_its_revocation_inside_the_transaction(
    pg_database: Database,
    cache: redis.Redis,
    broker: redis.Redis,
    memory_spans: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = World.create(pg_database, "trace-revoke-org")
    carol = world.user("carol@x.io")
    rebuild(pg_database, CacheWriter(cache, world.org_id), world.org_id)
    with pg_database.write() as session:
        org = session.get(Organization, world.org_id)
        assert org is not None
        token = create_scim_token(session, org, "Okta")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")  # configured; the test's provider
    app = create_app(Settings(REDIS_URL=BROKER_URL, CACHE_REDIS_URL=CACHE_URL), db=pg_database)
    assert install_tracing(app)
    scim = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    deactivate = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": False}],
    }
    with TestClient(app, base_url="http://idsync.test") as client:
        answer = client.patch(f"/scim/v2/Users/{carol}", json=deactivate, headers=scim)
        assert answer.status_code == 200, answer.text
    revision = _revision(pg_database, world.org_id)

    spans = memory_spans.get_finished_spans()
    server = _only([s for s in spans if s.kind is SpanKind.SERVER])
    write = _only(by_name(spans, "idsync.db.write"))
    revoke = _only(by_name(spans, "idsync.cache.revoke"))
    publish = _only(by_name(spans, "idsync.change.publish"))
    send = _only(by_name(spans, "send idsync.drain.priority"))  # a revocation: priority lane
    assert hex_ids(write)[2] == hex_ids(server)[1]
    assert hex_ids(revoke)[2] == hex_ids(write)[1]  # before the COMMIT, inside the write
    assert revoke.attributes["idsync.cache.revision"] == revision
    assert revoke.attributes["idsync.cache.users"] == 1
    assert write.attributes["idsync.change.kinds"] == ("user.deactivated",)
    assert hex_ids(publish)[2] == hex_ids(server)[1]  # after the write's span ended
    assert write.end_time <= publish.start_time
    assert hex_ids(send)[2] == hex_ids(publish)[1]
    assert send.attributes["messaging.destination.name"] == "idsync.revoke"


def test_a_dead_collector_holds_neither_the_recompute_nor_the_worker_s_exit(
    pg_database: Database,
    cache: redis.Redis,
    workers: WorkerProcess,
    memory_spans: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The collector takes connections and never answers: the worker's exports wait
    out their 10 s timeout in the export thread, while its drain recomputes at once and
    SIGTERM stops it within the exit flush bound."""
    world = World.create(pg_database, "trace-dead-org")
    dave = world.user("dave@x.io")
    writer = CacheWriter(cache, world.org_id)
    rebuild(pg_database, writer, world.org_id)
    with pg_database.write() as session:
        org = session.get(Organization, world.org_id)
        assert org is not None
        token = create_scim_token(session, org, "Okta")
    held: list[socket.socket] = []
    with socket.socket() as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(64)

        def hold() -> None:  # accept every export, never answer it
            with contextlib.suppress(OSError):
                while True:
                    held.append(blackhole.accept()[0])

        threading.Thread(target=hold, daemon=True).start()
        endpoint = f"http://127.0.0.1:{blackhole.getsockname()[1]}/v1/traces"
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "10")
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        proc = workers.start()
        app = create_app(Settings(REDIS_URL=BROKER_URL, CACHE_REDIS_URL=CACHE_URL), db=pg_database)
        assert install_tracing(app)
        scim = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
        with TestClient(app, base_url="http://idsync.test") as client:
            for _ in range(3):  # each drain's spans meet the dead collector
                patched = client.patch(f"/scim/v2/Users/{dave}", json=PATCH_NAME, headers=scim)
                assert patched.status_code == 200, patched.text
                revision = _revision(pg_database, world.org_id)
                started = time.monotonic()
                wait_until(partial(_caught_up, writer, revision), timeout=30)
                assert time.monotonic() - started < 5  # not an export timeout (10 s)
        started = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        assert time.monotonic() - started < 10, workers.logs()
        assert held  # the worker did try to export
    for conn in held:
        conn.close()
