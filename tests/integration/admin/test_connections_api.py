"""/api/v1/connections on both backends: the credential is write-only (no response, list or
OpenAPI example carries it; the stored column is ciphertext), one organization never sees
or touches another's connections, validation names the field, and a server without the
key answers with one line naming IDSYNC_SECRET_KEY."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from models.secret_box import generate_key
from tests.integration.admin.conftest import Two

SECRET = "okta-api-token-DO-NOT-LEAK-42"
OKTA = {"name": "okta", "kind": "okta", "url": "https://acme.okta.com", "secret": SECRET}


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    key = generate_key()
    monkeypatch.setenv("IDSYNC_SECRET_KEY", key)  # read when the app's Settings are made
    yield key


@pytest.fixture
def conns(keyed: str, two: Two) -> Two:
    return two


def test_create_read_change_remove_never_returns_the_secret(conns: Two) -> None:
    a = conns.a
    made = a.ok("post", "/connections", {**OKTA, "interval_s": 60, "deactivate_missing": True})
    assert made["has_secret"] is True and "secret" not in made and made["organization"] == "acme"
    conn_id = made["id"]
    for resp in (
        a.get("/connections"),
        a.get(f"/connections/{conn_id}"),
        a.patch(f"/connections/{conn_id}", {"secret": "rotated-" + SECRET}),
        a.patch(f"/connections/{conn_id}", {"interval_s": 120, "rate_limit_per_s": 5}),
        a.get(f"/connections/{conn_id}/runs"),
        a.client.get("/openapi.json"),
    ):
        assert resp.status_code == 200, resp.text
        assert SECRET not in resp.text
    shown = a.ok("get", f"/connections/{conn_id}")
    assert (shown["interval_s"], shown["rate_limit_per_s"]) == (120, 5.0)
    with a.db.read() as s:
        stored = s.execute(text("SELECT secret_enc FROM idp_connections")).scalar_one()
    assert SECRET not in stored
    schema = a.client.get("/openapi.json").json()["components"]["schemas"]
    assert schema["ConnectionIn"]["properties"]["secret"]["writeOnly"] is True
    assert "secret" not in schema["ConnectionOut"]["properties"]
    a.ok("delete", f"/connections/{conn_id}")
    assert a.get(f"/connections/{conn_id}").status_code == 404


def test_one_organization_never_reads_or_changes_anothers(conns: Two) -> None:
    a, b = conns.a, conns.b
    conn_id = a.ok("post", "/connections", OKTA)["id"]
    assert b.ok("get", "/connections") == []
    for method, path, body in (
        ("get", f"/connections/{conn_id}", None),
        ("patch", f"/connections/{conn_id}", {"enabled": False}),
        ("delete", f"/connections/{conn_id}", None),
        ("post", f"/connections/{conn_id}/run", None),
        ("get", f"/connections/{conn_id}/runs", None),
        ("get", f"/connections/{conn_id}/runs/1", None),
    ):
        resp = getattr(b, method)(path) if body is None else getattr(b, method)(path, body)
        assert resp.status_code == 404, (method, path, resp.text)
    assert a.ok("get", f"/connections/{conn_id}")["enabled"] is True
    b.ok("post", "/connections", OKTA)  # the same name in another organization
    assert len(a.ok("get", "/connections")) == 1
    assert a.client.get("/api/v1/connections").status_code == 401  # no key: nothing


def test_validation_names_the_field(conns: Two) -> None:
    a = conns.a
    for body, field in (
        ({"kind": "ldap", "url": "https://x"}, "kind"),
        ({"kind": "okta", "url": "https://x"}, "secret"),
        ({"kind": "graph", "secret": "s", "token_url": "https://login/t"}, "client_id"),
        ({"kind": "scim", "url": "not a url"}, "url"),
        ({"kind": "scim", "url": "https://x", "interval_s": 1}, "interval_s"),
        ({"kind": "scim", "url": "https://x", "secret_env": "X"}, "secret_env"),
        ({"kind": "scim", "url": "http://127.0.0.1:6379/"}, "url"),  # the outbound guard
        ({"kind": "scim", "url": "https://u:p@idp.example.com/scim"}, "url"),
        (
            {"kind": "graph", "secret": "s", "client_id": "c", "token_url": "http://10.0.0.1/t"},
            "token_url",
        ),
    ):
        resp = a.post("/connections", body)
        assert resp.status_code == 422, resp.text
        assert resp.json()["field"] == field, resp.text
    a.ok("post", "/connections", OKTA)
    assert a.post("/connections", OKTA).status_code == 409
    conn_id = a.ok("get", "/connections")[0]["id"]
    moved = a.patch(f"/connections/{conn_id}", {"url": "http://169.254.169.254/latest"})
    assert moved.status_code == 422 and moved.json()["field"] == "url", moved.text
    assert "IDSYNC_OUTBOUND_ALLOW_PRIVATE" in moved.text


def test_run_now_without_a_worker_is_503(conns: Two) -> None:
    conn_id = conns.a.ok("post", "/connections", OKTA)["id"]
    resp = conns.a.post(f"/connections/{conn_id}/run")
    assert resp.status_code == 503 and "no worker" in resp.json()["detail"]


def test_a_server_without_the_key_says_so(two: Two, monkeypatch: pytest.MonkeyPatch) -> None:
    resp = two.a.post("/connections", OKTA)
    assert resp.status_code == 503, resp.text
    assert resp.json()["field"] == "secret"
    assert resp.json()["detail"].startswith("IDSYNC_SECRET_KEY is not set")
    # a SCIM upstream without a credential needs no key
    two.a.ok("post", "/connections", {"kind": "scim", "url": "https://idp.example/scim/v2"})
