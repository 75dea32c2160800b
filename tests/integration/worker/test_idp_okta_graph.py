"""Okta Users/Groups API and Microsoft Graph pull adapters against mocked upstreams
(respx): paging (Link / @odata.nextLink), auth (SSWS / client-credentials token), rate
limits (429 with Retry-After or X-Rate-Limit-Reset, X-Rate-Limit-Remaining: 0), 5xx
retries, a page failing midway, and the same SCIM documents as the SCIM 2.0 source."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from sqlalchemy import func, select

from models.db.database import Database
from models.db.tables import Change, Group, GroupMember, User
from models.settings import Settings
from tests.integration.cache.world import World
from worker.beat import beat_schedule
from worker.idp.client import ClientCredentials, HttpClient, RetryPolicy, StaticAuth
from worker.idp.connection_runs import pull_from_settings
from worker.idp.pull import pull
from worker.idp.sources import GraphSource, OktaSource, ScimSource
from worker.idp.upstreams import source_from_settings

OKTA = "https://acme.okta.com"
GRAPH = "https://graph.microsoft.com"
TOKEN_URL = "https://login.microsoftonline.com/tenant-1/oauth2/v2.0/token"
SCIM = "https://idp.example.com/scim/v2"
NOW = 1_000_000.0


def _okta_user(i: int, status: str = "ACTIVE") -> dict[str, Any]:
    return {
        "id": f"00u{i}",
        "status": status,
        "profile": {
            "login": f"user{i}@example.com",
            "email": f"user{i}@example.com",
            "firstName": f"First{i}",
            "lastName": f"Last{i}",
        },
    }


def _okta_paged(
    items: list[dict[str, Any]], size: int, path: str, calls: list[str]
) -> Callable[[httpx.Request], httpx.Response]:
    """Okta-style cursor paging: ``after`` = id of the last item, ``Link: rel="next"``."""

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "SSWS okta-token"
        calls.append(str(request.url))
        after = request.url.params.get("after")
        limit = int(request.url.params.get("limit", size))
        start = 0 if after is None else [x["id"] for x in items].index(after) + 1
        chunk = items[start : start + min(limit, size)]
        headers = {}
        if start + len(chunk) < len(items):
            nxt = f"{OKTA}{path}?after={chunk[-1]['id']}&limit={limit}"
            headers["Link"] = f'<{OKTA}{path}?limit={limit}>; rel="self", <{nxt}>; rel="next"'
        return httpx.Response(200, json=chunk, headers=headers)

    return handler


def _okta_client(sleeps: list[float], attempts: int = 4) -> HttpClient:
    return HttpClient(
        OKTA,
        auth=StaticAuth("SSWS okta-token"),
        policy=RetryPolicy(attempts=attempts),
        sleep=sleeps.append,
        now=lambda: NOW,
        seed=1,
    )


def _mock_okta(users: list[dict[str, Any]], groups: dict[str, tuple[str, list[str]]]) -> list[str]:
    calls: list[str] = []
    respx.get(f"{OKTA}/api/v1/users").mock(
        side_effect=_okta_paged(users, 2, "/api/v1/users", calls)
    )
    okta_groups = [
        {"id": gid, "type": "OKTA_GROUP", "profile": {"name": n}} for gid, (n, _) in groups.items()
    ]
    respx.get(f"{OKTA}/api/v1/groups").mock(
        side_effect=_okta_paged(okta_groups, 1, "/api/v1/groups", calls)
    )
    by_id = {u["id"]: u for u in users}
    for gid, (_name, members) in groups.items():
        path = f"/api/v1/groups/{gid}/users"
        respx.get(f"{OKTA}{path}").mock(
            side_effect=_okta_paged([by_id[m] for m in members], 1, path, calls)
        )
    return calls


def _state(db: Database, org_id: str) -> tuple[dict[str, Any], dict[str, set[str]]]:
    with db.read() as s:
        users = {
            ext: (uid, active, attrs)
            for uid, ext, active, attrs in s.execute(
                select(User.id, User.external_id, User.active, User.attrs).where(
                    User.org_id == org_id
                )
            )
        }
        ext_of = {uid: ext for ext, (uid, _a, _d) in users.items()}
        groups: dict[str, set[str]] = {}
        for gid, gext in s.execute(
            select(Group.id, Group.external_id).where(Group.org_id == org_id)
        ):
            members = s.scalars(select(GroupMember.user_id).where(GroupMember.group_id == gid))
            assert gext is not None  # every pulled group carries the IdP's id
            groups[gext] = {ext_of[m] for m in members}
    return users, groups


def _changes(db: Database, org_id: str) -> int:
    with db.read() as s:
        return int(s.scalar(select(func.count()).where(Change.org_id == org_id)) or 0)


# --- Okta ---------------------------------------------------------------------------


@respx.mock
def test_okta_pull_pages_maps_and_reconciles_through_the_scim_path(database: Database) -> None:
    w = World.create(database)
    users = [_okta_user(1), _okta_user(2, status="LOCKED_OUT"), _okta_user(3, status="SUSPENDED")]
    calls = _mock_okta(users, {"00g1": ("eng", ["00u1", "00u3"]), "00g2": ("ops", ["00u2"])})
    report = pull(database, w.org_id, OktaSource(_okta_client([])))
    assert report.complete, report.error
    assert (report.upstream_users, report.users_created, report.groups_created) == (3, 3, 2)
    assert any("after=00u2" in c for c in calls)  # followed the Link header
    assert any("/api/v1/groups/00g1/users?after=00u1" in c for c in calls)  # member pages too
    stored, groups = _state(database, w.org_id)
    assert {ext: active for ext, (_i, active, _d) in stored.items()} == {
        "00u1": True,
        "00u2": True,  # locked out is still an activated account
        "00u3": False,  # suspended
    }
    doc = stored["00u1"][2]
    assert doc["userName"] == "user1@example.com" and doc["externalId"] == "00u1"
    assert doc["name"] == {"givenName": "First1", "familyName": "Last1"}
    assert [e["value"] for e in doc["emails"]] == ["user1@example.com"]
    assert groups == {"00g1": {"00u1", "00u3"}, "00g2": {"00u2"}}
    with database.read() as s:
        actors = set(s.scalars(select(Change.actor).where(Change.org_id == w.org_id)))
    assert actors == {"idp-pull:okta"}

    # unchanged upstream: nothing written; a profile change: one replace
    before = _changes(database, w.org_id)
    again = pull(database, w.org_id, OktaSource(_okta_client([])))
    assert (again.users_updated, again.groups_updated) == (0, 0)
    assert _changes(database, w.org_id) == before
    users[1]["profile"]["lastName"] = "Renamed"
    _mock_okta(users, {"00g1": ("eng", ["00u1", "00u3"]), "00g2": ("ops", ["00u2"])})
    changed = pull(database, w.org_id, OktaSource(_okta_client([])))
    assert changed.users_updated == 1 and _changes(database, w.org_id) == before + 1


@respx.mock
def test_okta_rate_limits_and_5xx_are_waited_out(database: Database) -> None:
    w = World.create(database)
    calls: list[str] = []
    ok = _okta_paged([_okta_user(1), _okta_user(2), _okta_user(3)], 2, "/api/v1/users", calls)
    n = {"users": 0}

    def users(request: httpx.Request) -> httpx.Response:
        n["users"] += 1
        if n["users"] == 1:  # Okta's 429: no Retry-After, the reset time instead
            return httpx.Response(429, headers={"X-Rate-Limit-Reset": str(int(NOW) + 7)})
        if n["users"] == 2:
            return httpx.Response(502)
        resp = ok(request)
        if "after" not in str(request.url):  # first page: the limit is used up
            resp.headers["X-Rate-Limit-Remaining"] = "0"
            resp.headers["X-Rate-Limit-Reset"] = str(int(NOW) + 4)
        return resp

    respx.get(f"{OKTA}/api/v1/users").mock(side_effect=users)
    respx.get(f"{OKTA}/api/v1/groups").mock(return_value=httpx.Response(200, json=[]))
    sleeps: list[float] = []
    report = pull(database, w.org_id, OktaSource(_okta_client(sleeps)))
    assert report.complete and report.users_created == 3
    assert sleeps[0] == 7.0  # waited for X-Rate-Limit-Reset
    assert 0 <= sleeps[1] <= 10  # backoff with jitter after the 502
    assert sleeps[2] == 4.0  # paused before the next page: Remaining was 0
    assert len(sleeps) == 3


@respx.mock
def test_okta_page_failing_midway_writes_and_deactivates_nothing(database: Database) -> None:
    w = World.create(database)
    w.user("local@example.com")
    with database.write() as s:
        u = s.scalar(select(User).where(User.org_id == w.org_id))
        assert u is not None
        u.external_id = "00u9"  # came from Okta earlier
    calls: list[str] = []
    good = _okta_paged([_okta_user(1), _okta_user(2), _okta_user(3)], 2, "/api/v1/users", calls)

    def second_page_fails(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500) if "after" in str(request.url) else good(request)

    respx.get(f"{OKTA}/api/v1/users").mock(side_effect=second_page_fails)
    respx.get(f"{OKTA}/api/v1/groups").mock(return_value=httpx.Response(200, json=[]))
    before = _changes(database, w.org_id)
    report = pull(database, w.org_id, OktaSource(_okta_client([])), deactivate_missing=True)
    assert not report.complete and "giving up" in (report.error or "")
    with database.read() as s:
        active = s.scalar(select(User.active).where(User.external_id == "00u9"))
    assert _changes(database, w.org_id) == before and active is True


# --- Microsoft Graph ------------------------------------------------------------------


def _graph_user(i: int, enabled: bool = True) -> dict[str, Any]:
    return {
        "id": f"g-user-{i}",
        "userPrincipalName": f"user{i}@example.com",
        "displayName": None,
        "givenName": f"First{i}",
        "surname": f"Last{i}",
        "mail": f"user{i}@example.com",
        "otherMails": [],
        "accountEnabled": enabled,
    }


def _graph_paged(
    items: list[dict[str, Any]], size: int, url: str, tokens: list[str]
) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        tokens.append(request.headers["Authorization"])
        skip = int(request.url.params.get("$skiptoken", "0"))
        if skip == 0:
            assert "$select" in request.url.params and "id" in request.url.params["$select"]
        chunk = items[skip : skip + size]
        body: dict[str, Any] = {"value": chunk}
        if skip + size < len(items):
            body["@odata.nextLink"] = f"{url}?$skiptoken={skip + size}"
        return httpx.Response(200, json=body)

    return handler


def _mock_graph(
    users: list[dict[str, Any]], groups: dict[str, tuple[str, list[str]]], tokens: list[str]
) -> None:
    url = f"{GRAPH}/v1.0/users"
    respx.get(url).mock(side_effect=_graph_paged(users, 2, url, tokens))
    items = [{"id": gid, "displayName": n} for gid, (n, _m) in groups.items()]
    url = f"{GRAPH}/v1.0/groups"
    respx.get(url).mock(side_effect=_graph_paged(items, 1, url, tokens))
    for gid, (_n, members) in groups.items():
        url = f"{GRAPH}/v1.0/groups/{gid}/members/microsoft.graph.user"
        respx.get(url).mock(side_effect=_graph_paged([{"id": m} for m in members], 1, url, tokens))


def _token_route(responses: list[httpx.Response] | None = None) -> respx.Route:
    issued = {"n": 0}

    def token(request: httpx.Request) -> httpx.Response:
        form = parse_qs(request.content.decode())
        assert form["grant_type"] == ["client_credentials"]
        assert form["client_id"] == ["app-1"] and form["client_secret"] == ["s3cret"]
        assert form["scope"] == ["https://graph.microsoft.com/.default"]
        if responses:
            return responses.pop(0)
        issued["n"] += 1
        return httpx.Response(200, json={"access_token": f"tok-{issued['n']}", "expires_in": 3599})

    return respx.post(TOKEN_URL).mock(side_effect=token)


def _graph_source(sleeps: list[float]) -> GraphSource:
    policy = RetryPolicy(attempts=4)
    creds = ClientCredentials(
        TOKEN_URL,
        "app-1",
        "s3cret",
        "https://graph.microsoft.com/.default",
        policy=policy,
        sleep=sleeps.append,
        seed=2,
    )
    client = HttpClient(GRAPH, auth=creds, policy=policy, sleep=sleeps.append, seed=1)
    return GraphSource(client)


@respx.mock
def test_graph_pull_fetches_a_token_pages_and_reconciles(database: Database) -> None:
    w = World.create(database)
    tokens: list[str] = []
    token = _token_route()
    users = [_graph_user(1), _graph_user(2), _graph_user(3, enabled=False)]
    _mock_graph(users, {"grp-1": ("eng", ["g-user-1", "g-user-3"]), "grp-2": ("ops", [])}, tokens)
    report = pull(database, w.org_id, _graph_source([]))
    assert report.complete, report.error
    assert (report.users_created, report.groups_created) == (3, 2)
    assert token.call_count == 1 and set(tokens) == {"Bearer tok-1"}  # one token, reused
    stored, groups = _state(database, w.org_id)
    assert {ext: a for ext, (_i, a, _d) in stored.items()} == {
        "g-user-1": True,
        "g-user-2": True,
        "g-user-3": False,  # accountEnabled: false
    }
    doc = stored["g-user-2"][2]
    assert doc["userName"] == "user2@example.com" and doc["externalId"] == "g-user-2"
    assert doc["name"] == {"givenName": "First2", "familyName": "Last2"}
    assert [e["value"] for e in doc["emails"]] == ["user2@example.com"]
    assert groups == {"grp-1": {"g-user-1", "g-user-3"}, "grp-2": set()}
    before = _changes(database, w.org_id)
    assert pull(database, w.org_id, _graph_source([])).complete
    assert _changes(database, w.org_id) == before  # idempotent


@respx.mock
def test_graph_429_retry_after_5xx_and_expired_token(database: Database) -> None:
    w = World.create(database)
    tokens: list[str] = []
    token = _token_route([httpx.Response(503), httpx.Response(429, headers={"Retry-After": "2"})])
    ok = _graph_paged([_graph_user(1)], 2, f"{GRAPH}/v1.0/users", tokens)
    n = {"users": 0}

    def users(request: httpx.Request) -> httpx.Response:
        n["users"] += 1
        if n["users"] == 1:
            return httpx.Response(429, headers={"Retry-After": "5"})
        if n["users"] == 2:
            return httpx.Response(504)
        if n["users"] == 3:
            return httpx.Response(401)  # the token expired: fetch a new one, retry once
        return ok(request)

    respx.get(f"{GRAPH}/v1.0/users").mock(side_effect=users)
    respx.get(f"{GRAPH}/v1.0/groups").mock(return_value=httpx.Response(200, json={"value": []}))
    sleeps: list[float] = []
    report = pull(database, w.org_id, _graph_source(sleeps))
    assert report.complete and report.users_created == 1
    # token endpoint: 503 (backoff), 429 (Retry-After 2), then tok-1; later tok-2 after the 401
    assert token.call_count == 4 and tokens == ["Bearer tok-2"]
    assert sleeps[1] == 2.0 and sleeps[2] == 5.0  # Retry-After honoured (token, API)
    assert len(sleeps) == 4 and all(0 <= s <= 10 for s in sleeps)


@respx.mock
def test_graph_members_page_failing_midway_writes_nothing(database: Database) -> None:
    w = World.create(database)
    tokens: list[str] = []
    _token_route()
    _mock_graph(
        [_graph_user(1), _graph_user(2)], {"grp-1": ("eng", ["g-user-1", "g-user-2"])}, tokens
    )
    members = f"{GRAPH}/v1.0/groups/grp-1/members/microsoft.graph.user"
    good = _graph_paged([{"id": "g-user-1"}, {"id": "g-user-2"}], 1, members, tokens)

    def fails_on_second(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500) if "skiptoken" in str(request.url) else good(request)

    respx.get(members).mock(side_effect=fails_on_second)
    before = _changes(database, w.org_id)
    report = pull(database, w.org_id, _graph_source([]), deactivate_missing=True)
    assert not report.complete and "giving up" in (report.error or "")
    assert _changes(database, w.org_id) == before


@respx.mock
def test_graph_bad_client_secret_is_not_retried(database: Database) -> None:
    w = World.create(database)
    token = _token_route([httpx.Response(401, json={"error": "invalid_client"})])
    respx.get(f"{GRAPH}/v1.0/users").mock(return_value=httpx.Response(200, json={"value": []}))
    report = pull(database, w.org_id, _graph_source([]))
    assert not report.complete and "401" in (report.error or "") and token.call_count == 1


# --- same documents as the SCIM source; configuration -----------------------------------


@respx.mock
def test_all_sources_store_the_same_scim_document(database: Database) -> None:
    scim_user = {
        "id": "up-1",
        "userName": "user1@example.com",
        "active": True,
        "name": {"givenName": "First1", "familyName": "Last1"},
        "emails": [{"value": "user1@example.com", "primary": True}],
    }
    page = {"totalResults": 1, "startIndex": 1, "itemsPerPage": 1, "Resources": [scim_user]}
    respx.get(f"{SCIM}/Users").mock(return_value=httpx.Response(200, json=page))
    respx.get(f"{SCIM}/Groups").mock(
        return_value=httpx.Response(200, json={**page, "totalResults": 0, "Resources": []})
    )
    okta = _okta_user(1)
    okta["id"] = "up-1"
    _mock_okta([okta], {})
    graph = _graph_user(1)
    graph["id"] = "up-1"
    _token_route()
    _mock_graph([graph], {}, [])
    docs = []
    for source in (
        ScimSource(HttpClient(SCIM, "t")),
        OktaSource(_okta_client([])),
        _graph_source([]),
    ):
        w = World.create(database)
        assert pull(database, w.org_id, source).complete
        stored, _groups = _state(database, w.org_id)
        docs.append(stored["up-1"][2])
    assert docs[0] == docs[1] == docs[2]


def test_configuration_picks_the_source_and_the_beat_schedules_it() -> None:
    def settings(**env: str) -> Settings:
        return Settings(**env)  # type: ignore[arg-type]

    okta = settings(
        IDSYNC_IDP_KIND="okta", IDSYNC_IDP_URL=OKTA, IDSYNC_IDP_TOKEN="t", IDSYNC_IDP_ORG="o"
    )
    graph = settings(
        IDSYNC_IDP_KIND="graph",
        IDSYNC_IDP_TOKEN_URL=TOKEN_URL,
        IDSYNC_IDP_CLIENT_ID="app-1",
        IDSYNC_IDP_CLIENT_SECRET="s3cret",
        IDSYNC_IDP_ORG="o",
    )
    scim = settings(IDSYNC_IDP_SCIM_URL=SCIM, IDSYNC_IDP_ORG="o")
    for s, kind in ((okta, OktaSource), (graph, GraphSource), (scim, ScimSource)):
        assert "idp-pull" in beat_schedule(s)
        source, close = source_from_settings(s)
        assert isinstance(source, kind)
        close()
    incomplete = settings(IDSYNC_IDP_KIND="graph", IDSYNC_IDP_ORG="o", IDSYNC_IDP_CLIENT_ID="x")
    assert "idp-pull" not in beat_schedule(incomplete)
    assert incomplete.idp_missing() == ["IDSYNC_IDP_TOKEN_URL", "IDSYNC_IDP_CLIENT_SECRET"]
    assert "idp-pull" not in beat_schedule(settings())
    with pytest.raises(ValueError, match="IDSYNC_IDP_TOKEN_URL"):
        source_from_settings(incomplete)


@respx.mock
def test_pull_from_settings_runs_the_configured_okta_source(database: Database) -> None:
    w = World.create(database)
    _mock_okta([_okta_user(1)], {"00g1": ("eng", ["00u1"])})
    s = Settings(
        IDSYNC_IDP_KIND="okta",
        IDSYNC_IDP_URL=OKTA,
        IDSYNC_IDP_TOKEN="okta-token",
        IDSYNC_IDP_ORG=w.org_id,
    )
    report = pull_from_settings(s, database)
    assert report["complete"] and report["source"] == "okta" and report["users_created"] == 1
    assert pull_from_settings(Settings(), database) == {
        "skipped": "no IdP pull configured (IDSYNC_IDP_KIND, IDSYNC_IDP_ORG, …)"
    }


def test_idp_pull_task_is_long_running_and_exclusive(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pull is acknowledged on receipt with an hour's limit (not the short tasks'
    20 s), and a second pull while one holds the lock is skipped."""
    import redis

    import worker.runtime
    from models.settings import Settings
    from tests.conftest import REDIS_TEST_URL
    from worker.broker import TASK_IDP_PULL
    from worker.factory import create_celery

    monkeypatch.setattr(worker.runtime, "_RUNTIME", None)  # restored after the test

    settings = Settings(REDIS_URL=REDIS_TEST_URL, DATABASE_URL="sqlite://")
    app = create_celery(settings, REDIS_TEST_URL)
    task = app.tasks[TASK_IDP_PULL]
    assert task.acks_late is False
    assert task.soft_time_limit == 3600 and task.time_limit == 3660
    held = redis.Redis.from_url(REDIS_TEST_URL).lock("idsync:idp-pull:lock", timeout=30)
    assert held.acquire(blocking=False)
    try:
        assert task.apply().get() == {"skipped": "another IdP pull is still running"}
    finally:
        held.release()
        if worker.runtime._RUNTIME is not None:
            worker.runtime._RUNTIME.database.dispose()
