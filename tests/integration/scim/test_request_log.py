"""The SCIM request log, HTTP metrics and per-token sync status, on a live app
(PostgreSQL and SQLite): every SCIM request counted by route template and logged with
its body redacted; "what did Entra send for user X" in one query; pruning; an IdP whose
every PATCH is rejected shows `failing`."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from click.testing import CliRunner
from sqlalchemy import event, func, select, update

from idsync.cli import main
from idsync.scim_log.writer import Captured, ScimLogWriter
from models.db.admin_keys import create_admin_key
from models.db.database import Database
from models.db.observability_tables import ScimRequestLog
from models.db.request_log import LogQuery, prune, read_log
from models.db.tables import Organization
from models.settings import get_settings
from tests.support.scim_client import Orgs, Scim, user_body

ENTRA_UA = "Microsoft.Identity.SyncFabric/1.0"
OKTA_UA = "Okta SCIM Client 1.0.0"


def _cli(db: Database, *args: str) -> Any:
    get_settings.cache_clear()  # the CLI reads DATABASE_URL from this environment
    try:
        return CliRunner().invoke(main, list(args), env={"DATABASE_URL": db.url})
    finally:
        get_settings.cache_clear()


def _rows(db: Database) -> list[ScimRequestLog]:
    with db.read() as session:
        return list(session.scalars(select(ScimRequestLog).order_by(ScimRequestLog.id)))


def _wait_rows(db: Database, n: int, timeout: float = 10.0) -> list[ScimRequestLog]:
    deadline = time.monotonic() + timeout
    while True:
        rows = _rows(db)
        if len(rows) >= n:
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(rows)} log rows, expected {n}")
        time.sleep(0.05)


def _admin_key(orgs: Orgs, org_id: str) -> str:
    with orgs.db.write() as session:
        org = session.get(Organization, org_id)
        assert org is not None
        return create_admin_key(session, org)


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_every_scim_request_is_counted_by_route_template(orgs: Orgs) -> None:
    scim = orgs.a
    before = scim.client.get("/metrics").text
    uid = scim.post("/Users", user_body("counted@x.io")).json()["id"]
    assert scim.get(f"/Users/{uid}").status_code == 200
    assert scim.get("/Users/no-such-id").status_code == 404
    assert scim.get("/Users", params={"filter": 'userName eq "counted@x.io"'}).status_code == 200
    scim.client.get("/healthz")
    after = scim.client.get("/metrics")
    assert after.status_code == 200
    text = after.text

    def moved(route: str, method: str, status: str) -> float:
        name = "idsync_http_requests_total"
        labels = {"route": route, "method": method, "status": status}
        return _metric(text, name, **labels) - _metric(before, name, **labels)

    assert moved("/scim/v2/Users", "POST", "201") == 1
    assert moved("/scim/v2/Users/{id}", "GET", "200") == 1
    assert moved("/scim/v2/Users/{id}", "GET", "404") == 1
    assert moved("/scim/v2/Users", "GET", "200") == 1
    assert moved("/healthz", "GET", "200") == 1
    assert 'idsync_http_request_duration_seconds_bucket{le="0.005",method="POST"' in text
    assert uid not in text and "no-such-id" not in text  # bounded labels: templates only


def test_the_log_keeps_each_request_redacted_with_its_revision(orgs: Orgs) -> None:
    scim = orgs.a
    entra = {"User-Agent": ENTRA_UA}
    created = scim.post(
        "/Users", user_body("ada@x.io", password="Sup3r-s3cret!"), headers=entra
    ).json()
    uid = created["id"]
    patched = scim.patch(
        f"/Users/{uid}",
        scim.ops(
            {"op": "replace", "path": "password", "value": "N3w-s3cret!"},
            {"op": "replace", "path": "displayName", "value": "Ada L."},
        ),
        headers={**entra, "X-Request-Id": "req-patch-1"},
    )
    assert patched.status_code == 200
    assert scim.get(f"/Users/{uid}", headers={"Authorization": "Bearer wrong"}).status_code == 401
    rows = _wait_rows(orgs.db, 3)
    stored = " ".join(f"{r.body} {r.query} {r.detail} {r.path}" for r in rows)
    assert "s3cret" not in stored and "wrong" not in stored
    post, patch, unauth = rows
    assert (post.method, post.route, post.status, post.idp) == (
        "POST",
        "/scim/v2/Users",
        201,
        "entra",
    )
    assert post.resource_id == uid and post.revision is not None and post.org_id == orgs.a.org_id
    assert post.token_id is not None and '"password":"[REDACTED]"' in (post.body or "")
    assert patch.route == "/scim/v2/Users/{id}" and patch.request_id == "req-patch-1"
    assert patch.revision is not None and patch.revision > post.revision
    assert '"value":"[REDACTED]"' in (patch.body or "") and "Ada L." in (patch.body or "")
    assert patch.duration_ms > 0 and patch.user_agent == ENTRA_UA
    assert unauth.status == 401 and unauth.org_id is None  # no organization to show it to

    # "what did Entra send for user X yesterday?": the API and the CLI
    key = _admin_key(orgs, orgs.a.org_id)
    answer = scim.client.get(
        "/api/v1/scim/log",
        params={"user": uid, "idp": "entra", "since": "1d"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert answer.status_code == 200, answer.text
    assert [e["method"] for e in answer.json()["entries"]] == ["PATCH", "POST"]
    other = _admin_key(orgs, orgs.b.org_id)  # another organization sees none of it
    theirs = scim.client.get("/api/v1/scim/log", headers={"Authorization": f"Bearer {other}"})
    assert theirs.json()["entries"] == []
    bad = scim.client.get(
        "/api/v1/scim/log",
        params={"since": "yesterday"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert bad.status_code == 422 and bad.json()["field"] == "since"

    result = _cli(
        orgs.db, "scim", "log", "--org", "acme", "--idp", "entra", "--user", uid, "--since", "1d"
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if not line.startswith("    ")]
    assert len(lines) == 2 and " POST " in lines[0] and " PATCH " in lines[1]
    assert "s3cret" not in result.output and "[REDACTED]" in result.output


def test_group_writes_naming_a_user_are_in_the_users_log(orgs: Orgs) -> None:
    scim = orgs.a
    uid = scim.post("/Users", user_body("member@x.io")).json()["id"]
    gid = scim.post(
        "/Groups",
        {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "eng"},
    ).json()["id"]
    scim.patch(
        f"/Groups/{gid}", scim.ops({"op": "add", "path": "members", "value": [{"value": uid}]})
    )
    _wait_rows(orgs.db, 3)
    found = read_log(orgs.db, LogQuery(org_id=orgs.a.org_id, user_id=uid))
    assert [(e["method"], e["resource_type"]) for e in found] == [
        ("PATCH", "Group"),
        ("POST", "User"),
    ]
    by_group = read_log(orgs.db, LogQuery(org_id=orgs.a.org_id, group_id=gid))
    assert [e["method"] for e in by_group] == ["PATCH", "POST"]


def test_the_log_prunes_by_age_and_by_count(orgs: Orgs) -> None:
    scim = orgs.a
    for i in range(5):
        scim.get("/Users", params={"filter": f'userName eq "p{i}@x.io"'})
    rows = _wait_rows(orgs.db, 5)
    old = datetime.now(UTC) - timedelta(days=40)
    with orgs.db.write() as session:
        session.execute(
            update(ScimRequestLog)
            .where(ScimRequestLog.id.in_([rows[0].id, rows[1].id]))
            .values(at=old)
        )
    assert prune(orgs.db, retention_s=30 * 86_400, max_rows=1_000_000) == 2
    assert prune(orgs.db, retention_s=30 * 86_400, max_rows=1) == 2
    remaining = _rows(orgs.db)
    assert [r.id for r in remaining] == [rows[4].id]
    with orgs.db.read() as session:
        assert session.scalar(select(func.count()).select_from(ScimRequestLog)) == 1


def _status(scim: Scim, key: str) -> dict[str, Any]:
    answer = scim.client.get("/api/v1/sync/status", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_an_idp_whose_every_patch_is_rejected_is_failing(orgs: Orgs) -> None:
    scim = orgs.a
    okta = {"User-Agent": OKTA_UA}
    uid = scim.post("/Users", user_body("rejected@x.io"), headers=okta).json()["id"]
    for _ in range(3):
        bad = scim.patch(
            f"/Users/{uid}",
            scim.ops({"op": "replace", "path": "nosuch[[", "value": "x"}),
            headers=okta,
        )
        assert bad.status_code == 400
    scim.get(f"/Users/{uid}", headers=okta)
    _wait_rows(orgs.db, 5)
    key = _admin_key(orgs, orgs.a.org_id)
    status = _status(scim, key)
    (token,) = status["scim_tokens"]
    assert token["idp"] == "okta" and token["user_agent"] == OKTA_UA
    assert token["requests_last_hour"] == {"201": 1, "400": 3, "200": 1}
    assert token["verdict"]["state"] == "failing"
    assert re.search(
        r"every PATCH in the last hour was rejected \(3 of 3\)", token["verdict"]["reason"]
    )
    assert token["last_error"]["status"] == 400 and token["last_error"]["scim_type"]
    assert token["last_error"]["scim_type"] in token["verdict"]["reason"]
    assert status["verdict"]["state"] == "failing"

    result = _cli(orgs.db, "sync", "status", "--org", "acme")
    assert result.exit_code == 1
    assert "failing" in result.output and "every PATCH" in result.output

    # the other organization's token did nothing: no verdict borrowed from acme
    other = _status(orgs.b, _admin_key(orgs, orgs.b.org_id))
    (theirs,) = other["scim_tokens"]
    assert theirs["verdict"]["state"] == "degraded" and theirs["last_request_at"] is None


def test_a_healthy_token(orgs: Orgs) -> None:
    scim = orgs.a
    uid = scim.post("/Users", user_body("fine@x.io")).json()["id"]
    scim.patch(f"/Users/{uid}", scim.ops({"op": "replace", "path": "displayName", "value": "F"}))
    _wait_rows(orgs.db, 2)
    (token,) = _status(scim, _admin_key(orgs, orgs.a.org_id))["scim_tokens"]
    assert token["verdict"]["state"] == "healthy", token
    assert token["last_error"] is None


def test_a_burst_of_requests_is_written_as_one_batch(orgs: Orgs) -> None:
    """The writer lingers after a batch's first row (`LINGER_S`): a burst is one batch
    (one checkout, BEGIN, INSERT or COPY, and COMMIT), not one per request."""
    db = Database(orgs.db.url)
    commits: list[object] = []
    event.listen(db.engine, "commit", commits.append)
    writer = ScimLogWriter(db, max_queue=100, max_body_bytes=1000)
    for i in range(20):
        writer.submit(
            Captured(
                at=time.time(),
                method="POST",
                route="/Users",
                path="/scim/v2/Users",
                query="",
                status=201,
                duration_ms=1.0,
                token_digest=None,
                user_agent=OKTA_UA,
                idp="okta",
                request_id=f"burst-{i}",
                resource_type="User",
                resource_id=None,
                revision=None,
                body=b'{"userName": "burst@x.io"}',
                error_body=b"",
                location=None,
            )
        )
    try:
        rows = _wait_rows(orgs.db, 20)
    finally:
        writer.stop()
    assert sorted(r.request_id or "" for r in rows) == sorted(f"burst-{i}" for i in range(20))
    assert len(commits) == 1
