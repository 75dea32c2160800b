"""The console over HTTP (both databases, a real Redis): sign-in and its cookie, sessions
stored hashed with idle and absolute expiry, CSRF on every write, sign-out, one
organization only, and what the pages answer."""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from idsync.app import create_app
from models.credentials import display_prefix
from models.db.admin_keys import revoke_admin_key
from models.db.database import Database
from models.settings import Settings
from tests.conftest import REDIS_TEST_URL
from tests.integration.console.world import EXTRA_PEOPLE, World, build_world, post
from tests.support.live_server import free_port
from tests.support.scim_client import user_body

SESSION_PREFIX = "idsync:console:session:"


def make_client(database: Database, tmp_path: Path, **settings: Any) -> TestClient:
    app = create_app(
        Settings(IDSYNC_DATA_DIR=tmp_path, REDIS_URL=REDIS_TEST_URL, **settings), db=database
    )
    return TestClient(app, base_url="http://idsync.test")


@pytest.fixture
def client(database: Database, tmp_path: Path) -> Iterator[TestClient]:
    with make_client(database, tmp_path) as c:
        yield c


@pytest.fixture
def world(database: Database, client: TestClient) -> World:
    return build_world(database, client)


@pytest.fixture
def cache() -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(REDIS_TEST_URL)
    yield r
    r.close()


def signin_token(client: TestClient, path: str = "/console/signin") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    found = re.search(r'name="signin_token" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


def sign_in(client: TestClient, key: str, next_path: str = "") -> httpx.Response:
    token = signin_token(client)
    answer: httpx.Response = client.post(
        "/console/signin",
        data={"signin_token": token, "admin_key": key, "next": next_path},
        follow_redirects=False,
    )
    return answer


def csrf_of(client: TestClient) -> str:
    page = client.get("/console/people")
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """Set-Cookie headers by cookie name."""
    return {h.split("=", 1)[0]: h for h in response.headers.get_list("set-cookie")}


def flags(header: str) -> set[str]:
    return {part.strip().lower() for part in header.split(";")[1:]}


def test_signin_sets_a_strict_httponly_session_cookie_and_stores_only_its_hash(
    client: TestClient, world: World, cache: redis.Redis
) -> None:
    unsigned = client.get("/console/", follow_redirects=False)
    assert unsigned.status_code == 303
    assert unsigned.headers["location"] == "/console/signin?next=%2Fconsole%2F"

    answer = sign_in(client, world.acme_key, "/console/people")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/people"
    cookie = set_cookies(answer)["idsync_console"]
    assert {"httponly", "samesite=strict", "path=/console"} <= flags(cookie)
    assert "secure" not in flags(cookie)  # plain HTTP: a Secure cookie would never come back
    assert not any(f.startswith(("max-age", "expires")) for f in flags(cookie))

    session_id = client.cookies["idsync_console"]
    assert len(session_id) >= 43  # 256 bits, URL-safe base64
    stored = cache.hgetall(SESSION_PREFIX + hashlib.sha256(session_id.encode()).hexdigest())
    assert stored[b"org_id"] == world.acme_id.encode()
    for key in cache.scan_iter(f"{SESSION_PREFIX}*"):
        assert session_id.encode() not in key
        assert all(session_id.encode() not in v for v in cache.hgetall(key).values())
        assert all(world.acme_key.encode() not in v for v in cache.hgetall(key).values())

    overview = client.get("/console/")
    assert overview.status_code == 200
    assert "acme" in overview.text and "Permission cache" in overview.text


@pytest.mark.parametrize(
    ("base_url", "headers"),
    [("https://idsync.test", {}), ("http://idsync.test", {"X-Forwarded-Proto": "https"})],
)
def test_the_session_cookie_is_secure_over_https_and_behind_a_proxy_saying_so(
    database: Database, tmp_path: Path, base_url: str, headers: dict[str, str]
) -> None:
    with make_client(database, tmp_path) as plain:
        world = build_world(database, plain)
    app = create_app(Settings(IDSYNC_DATA_DIR=tmp_path, REDIS_URL=REDIS_TEST_URL), db=database)
    with TestClient(app, base_url=base_url) as client:
        form = client.get("/console/signin", headers=headers)
        signin_cookie = set_cookies(form)["idsync_console_signin"]
        assert "secure" in flags(signin_cookie)
        value = signin_cookie.split(";")[0].split("=", 1)[1]
        answer = client.post(  # as the browser would, over HTTPS: the Secure cookie comes back
            "/console/signin",
            data={"signin_token": value, "admin_key": world.acme_key},
            headers={**headers, "Cookie": f"idsync_console_signin={value}"},
            follow_redirects=False,
        )
        assert answer.status_code == 303, answer.text
        assert "secure" in flags(set_cookies(answer)["idsync_console"])


def test_a_wrong_key_or_a_form_without_its_token_opens_nothing(
    client: TestClient, world: World
) -> None:
    wrong = sign_in(client, "idsync_admin_" + "x" * 43)
    assert wrong.status_code == 401
    assert "Unknown or revoked admin key" in wrong.text
    assert "idsync_console" not in set_cookies(wrong)
    scim_token_is_not_a_key = sign_in(client, world.globex_key.replace("admin", "scim"))
    assert scim_token_is_not_a_key.status_code == 401

    client.get("/console/signin")  # the sign-in cookie is set, the form field is missing
    forged = client.post(
        "/console/signin",
        data={"admin_key": world.acme_key},
        follow_redirects=False,
    )
    assert forged.status_code == 403
    assert "idsync_console" not in set_cookies(forged)
    assert client.get("/console/", follow_redirects=False).status_code == 303


def test_writes_without_the_csrf_token_are_refused_and_sign_out_ends_the_session(
    client: TestClient, world: World, cache: redis.Redis
) -> None:
    assert sign_in(client, world.acme_key).status_code == 303
    csrf = csrf_of(client)
    session_id = client.cookies["idsync_console"]

    for attempt in (
        {},
        {"data": {"csrf_token": "0" * len(csrf)}},
        {"headers": {"X-CSRF-Token": csrf[:-1] + ("0" if csrf[-1] != "0" else "1")}},
    ):
        refused = client.post("/console/signout", follow_redirects=False, **attempt)
        assert refused.status_code == 403, attempt
        assert client.get("/console/people").status_code == 200  # still signed in

    done = client.post("/console/signout", data={"csrf_token": csrf}, follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == "/console/signin"
    assert not cache.exists(SESSION_PREFIX + hashlib.sha256(session_id.encode()).hexdigest())
    cleared = set_cookies(done)["idsync_console"]
    assert "max-age=0" in flags(cleared)

    # the old cookie, replayed, opens nothing; a write with it is refused
    client.cookies.set("idsync_console", session_id, domain="idsync.test", path="/console")
    assert client.get("/console/", follow_redirects=False).status_code == 303
    again = client.post("/console/signout", headers={"X-CSRF-Token": csrf}, follow_redirects=False)
    assert again.status_code == 403


def test_the_csrf_header_is_accepted_in_place_of_the_field(
    client: TestClient, world: World
) -> None:
    assert sign_in(client, world.acme_key).status_code == 303
    done = client.post(
        "/console/signout", headers={"X-CSRF-Token": csrf_of(client)}, follow_redirects=False
    )
    assert done.status_code == 303


def test_idle_and_absolute_expiry(database: Database, tmp_path: Path, cache: redis.Redis) -> None:
    with make_client(database, tmp_path, IDSYNC_CONSOLE_IDLE_S=1) as client:
        world = build_world(database, client)
        assert sign_in(client, world.acme_key).status_code == 303
        ttl = cache.pttl(
            SESSION_PREFIX + hashlib.sha256(client.cookies["idsync_console"].encode()).hexdigest()
        )
        assert 0 < ttl <= 1000
        for _ in range(3):  # used every 0.5 s, it lives past its idle limit
            time.sleep(0.5)
            assert client.get("/console/people").status_code == 200
        time.sleep(1.3)
        idle = client.get("/console/people", follow_redirects=False)
        assert idle.status_code == 303
        assert idle.headers["location"].startswith("/console/signin")

    with make_client(
        database, tmp_path, IDSYNC_CONSOLE_IDLE_S=60, IDSYNC_CONSOLE_MAX_AGE_S=1.5
    ) as client:
        assert sign_in(client, world.acme_key).status_code == 303
        started = time.monotonic()
        while time.monotonic() - started < 1.2:  # in use all along
            assert client.get("/console/people").status_code == 200
            time.sleep(0.3)
        time.sleep(0.5)
        assert client.get("/console/people", follow_redirects=False).status_code == 303


def test_a_revoked_key_ends_its_sessions(
    client: TestClient, world: World, database: Database
) -> None:
    assert sign_in(client, world.acme_key).status_code == 303
    assert client.get("/console/").status_code == 200
    with database.write() as s:
        assert revoke_admin_key(s, display_prefix(world.acme_key)) == 1
    assert client.get("/console/", follow_redirects=False).status_code == 303
    assert sign_in(client, world.acme_key).status_code == 401


def test_next_after_signin_stays_in_the_console(client: TestClient, world: World) -> None:
    for outside in ("https://evil.test/", "//evil.test/console/", "/api/v1/organization"):
        answer = sign_in(client, world.acme_key, outside)
        assert answer.headers["location"] == "/console/", outside
    inside = sign_in(client, world.acme_key, "/console/explorer?user=x")
    assert inside.headers["location"] == "/console/explorer?user=x"


def test_one_organization_only(client: TestClient, world: World) -> None:
    assert sign_in(client, world.acme_key).status_code == 303
    other_person = client.get(f"/console/people/{world.eve}")
    assert other_person.status_code == 404
    assert "eve@globex.test" not in other_person.text
    assert "no such person in this organization" in other_person.text
    search = client.get("/console/people", params={"q": "eve"})
    assert "eve@globex.test" not in search.text
    assert "0 people" in search.text

    other_workspace = client.get(
        "/console/explorer",
        params={"user": "ada@acme.test", "workspace": "vault", "grant": "view_data"},
    )
    assert other_workspace.status_code == 200
    assert re.search(
        r"<strong>workspace</strong>: no workspace &#39;vault&#39;", other_workspace.text
    )
    other_user = client.get(
        "/console/explorer",
        params={"user": world.eve, "workspace": "marketing", "grant": "read"},
    )
    assert 'id="answer-reason">unknown_user<' in other_user.text
    assert "there is no such person in this organization" in other_user.text

    # the same questions from globex's own session see globex
    with TestClient(client.app, base_url="http://idsync.test") as globex:
        assert sign_in(globex, world.globex_key).status_code == 303
        assert "eve@globex.test" in globex.get(f"/console/people/{world.eve}").text
        assert globex.get(f"/console/people/{world.ada}").status_code == 404


def test_people_search_and_paging(client: TestClient, world: World) -> None:
    assert sign_in(client, world.acme_key).status_code == 303
    by_email = client.get("/console/people", params={"q": "ADA@acme"})
    assert f'href="/console/people/{world.ada}"' in by_email.text
    assert "1 person" in by_email.text
    by_display = client.get("/console/people", params={"q": "builder"})
    assert "bob@acme.test" in by_display.text and "ada@acme.test" not in by_display.text
    quoted = client.get("/console/people", params={"q": 'a"b\\'})  # text, not filter syntax
    assert quoted.status_code == 200 and "0 people" in quoted.text

    everyone = 2 + EXTRA_PEOPLE
    first = client.get("/console/people")
    assert f"{everyone} people" in first.text and "Page 1 of 2" in first.text
    assert first.text.count('href="/console/people/') == 25
    second = client.get("/console/people", params={"page": 2})
    assert second.text.count('href="/console/people/') == everyone - 25
    assert "Page 2 of 2" in second.text
    partial = client.get("/console/people", params={"q": "ada"}, headers={"HX-Request": "true"})
    assert "<html" not in partial.text and "ada@acme.test" in partial.text
    # a write since: the remembered total (scim.totals) is not reused
    post(client, "/scim/v2/Users", world.acme_scim, user_body("zed@acme.test"))
    assert f"{everyone + 1} people" in client.get("/console/people").text
    assert "1 person" in client.get("/console/people", params={"q": "zed"}).text
    restored = client.get(  # the back button, the page no longer in htmx's cache
        "/console/people",
        params={"q": "ada"},
        headers={"HX-Request": "true", "HX-History-Restore-Request": "true"},
    )
    assert "<html" in restored.text and "ada@acme.test" in restored.text


def test_a_persons_access_with_provenance(client: TestClient, world: World) -> None:
    assert sign_in(client, world.acme_key).status_code == 303
    page = client.get(f"/console/people/{world.ada}")
    assert page.status_code == 200
    text = re.sub(r"\s+", " ", page.text)
    assert "analysts" in text and "Marketing" in text
    assert (
        "group <strong>analysts</strong> holds role <strong>editor</strong>, bound by hand" in text
    )
    # each grant with its provenance: group → role (binding)
    assert "<td>view_data</td><td>source:*</td><td>analysts → editor (bound by hand)</td>" in text
    assert "manage_destination" not in text  # editor does not hold it
    bob = client.get(f"/console/people/{world.bob}")
    assert "In no group." in bob.text and "No role in any workspace." in bob.text


def test_the_explorer_explains_a_deny_like_the_admin_api(client: TestClient, world: World) -> None:
    question = {
        "user": "ada@acme.test",
        "workspace": "marketing",
        "grant": "manage_destination",
        "resource_type": "destination",
        "resource_id": "d1",
    }
    api = client.post(
        "/api/v1/explain",
        json={
            "user": world.ada,
            "workspace": "marketing",
            "grant": "manage_destination",
            "resource": {"type": "destination", "id": "d1"},
        },
        headers={"Authorization": f"Bearer {world.acme_key}"},
    ).json()
    assert api["reason"] == "grant_missing"
    assert sign_in(client, world.acme_key).status_code == 303
    page = client.get("/console/explorer", params=question)
    assert f'id="answer-status">{api["status"]}<' in page.text
    assert f'id="answer-reason">{api["reason"]}<' in page.text
    assert "none of the person&#39;s groups holds that grant here" in page.text
    for missing in api["missing"]:
        assert missing.replace("'", "&#39;") in page.text
    for rule in api["rules"]:
        assert f"<code>{rule}</code>" in page.text
    # groups by name, each binding with its provenance in words
    assert "<li>Groups: analysts</li>" in page.text
    assert "group <strong>analysts</strong> holds role <strong>editor</strong>, bound by hand" in (
        page.text
    )
    allowed = client.get(
        "/console/explorer",
        params={"user": world.ada, "workspace": "marketing", "grant": "read"},
        headers={"HX-Request": "true"},
    )
    assert 'id="answer-status">allow<' in allowed.text and "<html" not in allowed.text
    not_asked_so = client.get(
        "/console/explorer",
        params={"user": world.ada, "workspace": "marketing", "grant": "view_data"},
    )
    assert re.search(r'id="explain-error"><strong>[a-z.]+</strong>: .*workspace', not_asked_so.text)
    incomplete = client.get("/console/explorer", params={"user": "ada@acme.test"})
    assert "<strong>workspace</strong>: required" in incomplete.text


def test_pages_carry_security_headers_and_assets_are_local(
    client: TestClient, world: World
) -> None:
    signin = client.get("/console/signin")
    csp = signin.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert signin.headers["x-frame-options"] == "DENY"
    assert signin.headers["cache-control"] == "no-store"
    assert not re.findall(r"""(?:https?:)?//[^\s'"<>)]+""", signin.text)
    assert "<script>" not in signin.text  # no inline script: the CSP would refuse it
    htmx = client.get("/console/static/htmx.min.js")
    assert htmx.status_code == 200 and len(htmx.content) > 40_000
    assert client.get("/console/static/htmx.LICENSE").status_code == 200
    assert client.get("/console/static/console.css").status_code == 200
    assert client.get("/console/static/../routes.py").status_code == 404
    assert client.get("/console", follow_redirects=False).headers["location"] == "/console/"
    too_big = client.post(
        "/console/signin",
        content=b"a=" + b"x" * 70_000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert too_big.status_code == 413
    assert "/console" not in str(client.get("/openapi.json").json()["paths"])


def test_without_redis_nobody_signs_in_and_an_unreachable_one_is_a_503(
    database: Database, tmp_path: Path, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(Settings(IDSYNC_DATA_DIR=tmp_path), db=database)
    with TestClient(app, base_url="http://idsync.test") as client:
        assert app.state.settings.resolved_cache_redis_url() is None
        assert "No Redis is configured" in client.get("/console/signin").text
        assert sign_in(client, world.acme_key).status_code == 503

    closed = f"redis://127.0.0.1:{free_port()}/0"
    app = create_app(Settings(IDSYNC_DATA_DIR=tmp_path, CACHE_REDIS_URL=closed), db=database)
    with TestClient(app, base_url="http://idsync.test") as client:
        caplog.set_level(logging.DEBUG)
        down = sign_in(client, world.acme_key)
        assert down.status_code == 503
        assert down.headers["retry-after"] == "5"
        assert "try again in a moment" in down.text
        client.cookies.set("idsync_console", "x" * 43, domain="idsync.test", path="/console")
        assert client.get("/console/people").status_code == 503
    assert world.acme_key not in caplog.text  # the key typed in is never logged


def test_the_admin_key_is_never_logged(
    client: TestClient, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert sign_in(client, world.acme_key).status_code == 303
    session_id = client.cookies["idsync_console"]
    assert client.get("/console/").status_code == 200
    assert sign_in(client, world.acme_key[:-2] + "xx").status_code == 401
    assert caplog.records  # requests are logged, without the key or the session id
    assert world.acme_key not in caplog.text
    assert world.acme_key[:-2] not in caplog.text
    assert session_id not in caplog.text
