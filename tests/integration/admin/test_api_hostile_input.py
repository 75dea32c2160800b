"""Hostile input to /api/v1 (issue 10): deep nesting, surrogate bytes, huge numbers,
bodies over the limit (401 before reading them when unauthenticated), trailing slashes,
empty ids, null resource ids, repeated grants, and a JSON 500 that keeps the keep-alive
connection usable. Every answer is the API's `{"detail", "field"}` shape; nothing is
written by a refused request."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from idsync.app import create_app
from idsync.http_guards import MAX_API_BODY_BYTES, install_http_guards
from models.db.admin_keys import create_admin_key
from models.db.database import Database
from models.db.tokens import get_or_create_org
from tests.conftest import REDIS_TEST_URL
from tests.integration.admin.conftest import Two
from tests.support.live_server import live_server
from tests.support.scim_client import make_settings

SERVICE_TOKEN = "svc-token"


def guarded_app(database: Database) -> FastAPI:
    """The app as `create_app` builds it, with the guards `install_http_guards` adds
    (idempotent: a no-op once create_app installs them itself)."""
    settings = make_settings(CACHE_REDIS_URL=REDIS_TEST_URL, IDSYNC_CHECK_API_TOKEN=SERVICE_TOKEN)
    app = create_app(settings, db=database)
    install_http_guards(app, database, settings)
    return app


@pytest.fixture
def guarded(database: Database) -> Iterator[tuple[TestClient, dict[str, str]]]:
    with database.write() as s:
        key = create_admin_key(s, get_or_create_org(s, "acme"), "test")
    with TestClient(guarded_app(database), base_url="http://idsync.test") as client:
        yield client, {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def _api_error(r: Any, status: int, field: str | None = "<any>") -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body: dict[str, Any] = r.json()
    assert set(body) >= {"detail", "field"}, body
    if field != "<any>":
        assert body["field"] == field, body
    return body


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_deeply_nested_bodies_are_422(guarded: tuple[TestClient, dict[str, str]]) -> None:
    client, headers = guarded
    for levels in (40, 990, 100_000):
        deep = _deep(levels)
        bodies = [
            ("/api/v1/roles", f'{{"id":"r","name":"r","resource_grants":[{{"scope":{deep}}}]}}'),
            ("/api/v1/check", f'{{"org":"o","user":{deep},"workspace":"w","grant":"g"}}'),
            ("/api/v1/explain", f'{{"user":"u","workspace":{deep},"x":"\\u0041"}}'),
            ("/api/v1/mapping-rules", deep),
        ]
        for path, body in bodies:
            r = client.post(path, content=body.encode(), headers=headers)
            assert "deeper than 32 levels" in _api_error(r, 422)["detail"], (levels, path)


def test_raw_surrogate_bytes_are_422(two: Two) -> None:
    """FastAPI decodes JSON with `surrogatepass`: the bytes of a surrogate became a string
    the database could not encode (500). They are not UTF-8: 422, before the handler."""
    api = two.a
    api.ok("post", "/workspaces", {"id": "w"})
    before = two.change_count()
    bad = b"\xed\xa0\x80"
    headers = {"Authorization": f"Bearer {api.key}", "Content-Type": "application/json"}
    requests = [
        ("PUT", "/api/v1/workspaces/w/resources/source/s1", b'{"labels":{"env":"' + bad + b'"}}'),
        ("POST", "/api/v1/workspaces", b'{"id":"w2","name":"' + bad + b'"}'),
        ("POST", "/api/v1/check", b'{"org":"o","workspace":"w","grant":"g","user":"' + bad + b'"}'),
        ("POST", "/api/v1/explain", b'{"workspace":"w","grant":"g","user":"' + bad + b'"}'),
        (
            "POST",
            "/api/v1/mapping-rules",
            b'{"attribute":"displayName","match":"exact",'
            b'"pattern":"' + bad + b'","kind":"org_admin"}',
        ),
    ]
    for method, path, body in requests:
        r = api.client.request(method, path, content=body, headers=headers)
        assert "not valid UTF-8" in _api_error(r, 422)["detail"], path
    assert two.change_count() == before


def test_rule_position_out_of_integer_range_is_422(two: Two) -> None:
    """10**30 overflowed the driver, 2**31 PostgreSQL's INTEGER: both were 500."""
    api = two.a
    rule = {"attribute": "displayName", "match": "exact", "pattern": "admins", "kind": "org_admin"}
    api.ok("post", "/mapping-rules", {**rule, "id": "r1"})
    before = two.change_count()
    for position in (10**30, 2**31, -(2**31) - 1, -(10**30)):
        _api_error(api.post("/mapping-rules", {**rule, "position": position}), 422, "position")
        _api_error(api.put("/mapping-rules/r1", {**rule, "position": position}), 422, "position")
    assert two.change_count() == before
    for position in (2**31 - 1, -(2**31)):
        made = api.ok("post", "/mapping-rules", {**rule, "position": position})
        assert made["rule"]["position"] == position


def test_empty_ids_are_422_not_replaced(two: Two) -> None:
    api = two.a
    api.ok("post", "/workspaces", {"id": "w"})
    before = two.change_count()
    rule = {"attribute": "displayName", "match": "exact", "pattern": "x", "kind": "org_admin"}
    for path, body in (
        ("/workspaces", {"id": ""}),
        ("/spaces", {"id": "", "workspace_id": "w"}),
        ("/mapping-rules", {**rule, "id": ""}),
        ("/roles", {"id": "", "name": "r", "workspace_grants": ["access_agents"]}),
    ):
        _api_error(api.post(path, body), 422, "id")
    assert two.change_count() == before
    # left out (or null), an id is still generated
    assert api.ok("post", "/workspaces", {"id": None})["id"]
    assert api.ok("post", "/workspaces", {})["id"]


def test_null_resource_ids_and_repeated_grants_are_422(two: Two) -> None:
    api = two.a
    before = two.change_count()
    base = {"id": "r", "name": "r", "model": "v2"}
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {
                "resource_grants": [
                    {"scope": "source", "resource_id": None, "grants": ["view_data"]}
                ]
            },
            "resource_grants[0].resource_id",
        ),
        (
            {"resource_grants": [{"scope": "source", "resource_id": 7, "grants": ["view_data"]}]},
            "resource_grants[0].resource_id",
        ),
        ({"workspace_grants": ["access_agents"] * 10_000}, "workspace_grants[1]"),
        (
            {
                "resource_grants": [
                    {"scope": "source", "resource_id": "*", "grants": ["view_data", "view_data"]}
                ]
            },
            "resource_grants[0].grants[1]",
        ),
        (
            {
                "resource_grants": [
                    {"scope": "source", "resource_id": "s", "grants": ["view_data"]},
                    {"scope": "source", "resource_id": "s", "grants": ["view_data"]},
                ]
            },
            "resource_grants[1]",
        ),
    ]
    for extra, field in cases:
        _api_error(api.post("/roles", {**base, **extra}), 422, field)
    nested = {"scope": "source", "resource_id": "*", "grants": [["view_data"], ["view_data"]]}
    _api_error(api.post("/roles", {**base, "resource_grants": [nested]}), 422)  # was a 500
    legacy = {
        "id": "l",
        "name": "l",
        "model": "legacy",
        "statements": [{"effect": "allow", "actions": ["read", "read"], "resource": "sync"}],
    }
    _api_error(api.post("/roles", legacy), 422, "statements[0].actions[1]")
    assert two.change_count() == before
    # a missing resource_id is named as before
    r = api.post(
        "/roles", {**base, "resource_grants": [{"scope": "source", "grants": ["view_data"]}]}
    )
    _api_error(r, 422, "resource_grants[0].resource_id")


def test_trailing_slash_is_404_not_a_redirect(guarded: tuple[TestClient, dict[str, str]]) -> None:
    client, headers = guarded
    for method, path in (
        ("GET", "/api/v1/workspaces/"),
        ("GET", "/api/v1/organization/"),
        ("POST", "/api/v1/workspaces/"),
        ("POST", "/api/v1/check/"),
        ("GET", "/healthz/"),
    ):
        r = client.request(method, path, headers=headers, json={}, follow_redirects=False)
        assert r.status_code == 404, (path, r.status_code)
        assert "detail" in r.json()


def test_body_over_the_limit_is_413_when_authenticated(
    guarded: tuple[TestClient, dict[str, str]],
) -> None:
    client, headers = guarded
    big = json.dumps({"id": "w", "name": "x" * (MAX_API_BODY_BYTES + 10)}).encode()
    for path in ("/api/v1/workspaces", "/api/v1/check", "/api/v1/roles"):
        r = client.post(path, content=big, headers=headers)
        _api_error(r, 413, None)
    service = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
    _api_error(client.post("/api/v1/check", content=big, headers=service), 413, None)
    # the service token is a check-API credential only
    _api_error(
        client.post("/api/v1/workspaces", content=big, headers=service), 401, "Authorization"
    )
    for auth in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic Zm9vOmJhcg=="}):
        r = client.post("/api/v1/workspaces", content=big, headers=auth)
        _api_error(r, 401, "Authorization")
        assert r.headers["www-authenticate"] == "Bearer"
    # just under the limit: read and validated as usual
    fits = json.dumps({"id": "w", "name": "x" * (MAX_API_BODY_BYTES - 100)}).encode()
    _api_error(client.post("/api/v1/workspaces", content=fits, headers=headers), 422, "name")


def _exchange(base: str, head: bytes, body: bytes) -> tuple[bytes, float]:
    """Send `head` and a first part of a body, then read the answer (and how long it
    took) without sending the rest."""
    parts = urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data, time.monotonic() - started


def test_large_body_is_refused_without_reading_it(database: Database) -> None:
    """A 20 MB body declared (or streamed) to a live server: 401 without a credential,
    413 with one, answered after the first kilobyte, the rest never sent."""
    with database.write() as s:
        key = create_admin_key(s, get_or_create_org(s, "acme"), "test")
    with live_server(guarded_app(database)) as base:
        size = 20 * 1024 * 1024
        for auth, status in ((b"", b"401"), (f"Authorization: Bearer {key}\r\n".encode(), b"413")):
            head = (
                b"POST /api/v1/workspaces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + auth
                + f"Content-Length: {size}\r\n\r\n".encode()
            )
            answer, took = _exchange(base, head, b'{"name":"' + b"x" * 1024)
            assert answer.startswith(b"HTTP/1.1 " + status), answer[:200]
            assert took < 5
            chunked = (
                b"POST /api/v1/workspaces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + auth
                + b"Transfer-Encoding: chunked\r\n\r\n"
            )
            piece = b"x" * 65536
            stream = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(17))
            answer, took = _exchange(base, chunked, stream)
            assert answer.startswith(b"HTTP/1.1 " + status), answer[:200]


def test_unexpected_error_is_json_500_and_the_connection_survives(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Starlette's plain-text 500 re-raised the exception and uvicorn closed the
    keep-alive connection ("connection reset by peer" on the next request)."""
    app = guarded_app(database)

    @app.get("/api/v1/boom-for-test")
    def boom() -> None:
        raise RuntimeError("boom for the test")

    with live_server(app) as base, caplog.at_level(logging.ERROR, logger="idsync.http"):
        parts = urlsplit(base)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
        for _ in range(3):
            conn.request("GET", "/api/v1/boom-for-test", headers={"X-Request-Id": "rid-boom-1"})
            r = conn.getresponse()
            body = json.loads(r.read())
            assert r.status == 500
            assert r.getheader("content-type") == "application/json"
            assert body == {
                "detail": "internal server error",
                "field": None,
                "request_id": "rid-boom-1",
            }
            assert r.getheader("x-request-id") == "rid-boom-1"
            conn.request("GET", "/healthz")  # the same connection
            ok = conn.getresponse()
            assert ok.status == 200, ok.read()
            ok.read()
        conn.close()
    logged = [r for r in caplog.records if r.getMessage() == "unhandled error"]
    assert logged and logged[0].exc_info is not None
    assert "boom for the test" in str(logged[0].exc_info[1])


def test_uvicorn_answers_a_bad_request_line_itself(database: Database) -> None:
    """Documented (docs/admin-api.md): a request line HTTP cannot parse never reaches the
    app; uvicorn answers 400 in plain text and closes the connection."""
    with live_server(guarded_app(database)) as base:
        answer, _ = _exchange(base, b"GET /api/v1/\x00 bad HTTP/1.1\r\nHost: x\r\n\r\n", b"")
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]


def test_ordinary_requests_pass_the_guards(guarded: tuple[TestClient, dict[str, str]]) -> None:
    client, headers = guarded
    made = client.post(
        "/api/v1/workspaces", json={"id": "plain", "name": "é ü 😀"}, headers=headers
    )
    assert made.status_code == 201, made.text
    assert client.get("/api/v1/workspaces/plain", headers=headers).json()["name"] == "é ü 😀"
    nested = {
        "id": "r",
        "name": "r",
        "resource_grants": [
            {
                "scope": "parent_model",
                "resource_id": "pm",
                "grants": ["view_parent_model_data"],
                "subset_limit": {"region": ["EU"]},
            },
        ],
    }
    assert client.post("/api/v1/roles", json=nested, headers=headers).status_code == 201
