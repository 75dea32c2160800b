"""IdP pull against a mocked upstream SCIM API (respx): paging, auth, 429 Retry-After,
5xx and timeouts with backoff, a page that fails midway, deactivation of missing users."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import select

from models.db.database import Database
from models.db.tables import Change, Group, GroupMember, User
from tests.integration.cache.world import World
from worker.idp.client import HttpClient, RetryPolicy
from worker.idp.pull import pull
from worker.idp.sources import ScimSource

BASE = "https://idp.example.com/scim/v2"


def _user(i: int, active: bool = True) -> dict[str, Any]:
    return {"id": f"up-{i}", "userName": f"user{i}@example.com", "active": active}


def _page(resources: list[dict[str, Any]], total: int, start: int) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


def _paged(resources: list[dict[str, Any]], size: int) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer s3cret"
        start = int(request.url.params["startIndex"])
        chunk = resources[start - 1 : start - 1 + size]
        return httpx.Response(200, json=_page(chunk, len(resources), start))

    return handler


def _source(sleeps: list[float]) -> ScimSource:
    client = HttpClient(BASE, "s3cret", policy=RetryPolicy(attempts=4), sleep=sleeps.append, seed=1)
    return ScimSource(client, name="test-idp", page_size=2)


@respx.mock
def test_pull_creates_updates_and_deactivates_missing(database: Database) -> None:
    w = World.create(database)
    w.user("user1@example.com")  # pushed earlier: adopted by userName
    users = [_user(1), _user(2), _user(3)]
    respx.get(f"{BASE}/Users").mock(side_effect=_paged(users, 2))
    respx.get(f"{BASE}/Groups").mock(
        side_effect=_paged(
            [
                {
                    "id": "up-g",
                    "displayName": "eng",
                    "members": [{"value": "up-1"}, {"value": "up-3"}],
                }
            ],
            2,
        )
    )
    sleeps: list[float] = []
    report = pull(database, w.org_id, _source(sleeps), deactivate_missing=True)
    assert report.complete and report.users_created == 2 and report.users_updated == 1
    assert report.groups_created == 1 and report.users_deactivated == 0
    with database.read() as s:
        group_id = s.scalar(select(Group.id).where(Group.org_id == w.org_id))
        members = set(
            s.scalars(select(GroupMember.user_id).where(GroupMember.group_id == group_id))
        )
        ext = dict(
            s.execute(select(User.external_id, User.id).where(User.org_id == w.org_id)).all()
        )
        actors = set(s.scalars(select(Change.actor).where(Change.org_id == w.org_id)))
    assert members == {ext["up-1"], ext["up-3"]}
    assert "idp-pull:test-idp" in actors  # same write path as SCIM pushes, change rows included
    # second pull: user 3 gone upstream, user 2 deactivated upstream; idempotent otherwise
    respx.get(f"{BASE}/Users").mock(side_effect=_paged([_user(1), _user(2, active=False)], 2))
    respx.get(f"{BASE}/Groups").mock(
        side_effect=_paged(
            [{"id": "up-g", "displayName": "eng", "members": [{"value": "up-1"}]}], 2
        )
    )
    report = pull(database, w.org_id, _source(sleeps), deactivate_missing=True)
    assert (report.users_created, report.users_updated, report.users_deactivated) == (0, 1, 1)
    assert report.groups_updated == 1
    with database.read() as s:
        active = dict(
            s.execute(select(User.external_id, User.active).where(User.org_id == w.org_id)).all()
        )
    assert active == {"up-1": True, "up-2": False, "up-3": False}


@respx.mock
def test_429_retry_after_5xx_and_timeouts_are_retried(database: Database) -> None:
    w = World.create(database)
    calls = {"n": 0}
    ok = _paged([_user(1)], 2)

    def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(429, headers={"Retry-After": "3"})
        if calls["n"] == 2:
            return httpx.Response(502)
        if calls["n"] == 3:
            raise httpx.ReadTimeout("slow", request=request)
        return ok(request)

    respx.get(f"{BASE}/Users").mock(side_effect=flaky)
    respx.get(f"{BASE}/Groups").mock(side_effect=_paged([], 2))
    sleeps: list[float] = []
    report = pull(database, w.org_id, _source(sleeps))
    assert report.complete and report.users_created == 1
    assert sleeps[0] == 3.0  # Retry-After honoured
    assert len(sleeps) == 3 and all(0 <= s <= 10 for s in sleeps)  # backoff with jitter


@respx.mock
def test_a_page_failing_midway_writes_and_deactivates_nothing(database: Database) -> None:
    w = World.create(database)
    w.user("local@example.com")
    with database.write() as s:  # a user that came from this IdP earlier
        u = s.scalar(select(User).where(User.org_id == w.org_id))
        assert u is not None
        u.external_id = "up-9"
    users = [_user(1), _user(2), _user(3)]
    good = _paged(users, 2)

    def second_page_fails(request: httpx.Request) -> httpx.Response:
        if request.url.params["startIndex"] != "1":
            return httpx.Response(500)
        return good(request)

    respx.get(f"{BASE}/Users").mock(side_effect=second_page_fails)
    respx.get(f"{BASE}/Groups").mock(side_effect=_paged([], 2))
    with database.read() as s:
        before = s.scalar(select(Change.revision).order_by(Change.revision.desc()).limit(1))
    report = pull(database, w.org_id, _source([]), deactivate_missing=True)
    assert not report.complete and report.error and "giving up" in report.error
    with database.read() as s:
        after = s.scalar(select(Change.revision).order_by(Change.revision.desc()).limit(1))
        active = s.scalar(select(User.active).where(User.external_id == "up-9"))
    assert after == before and active is True


@respx.mock
def test_unauthorized_is_not_retried(database: Database) -> None:
    w = World.create(database)
    route = respx.get(f"{BASE}/Users").mock(return_value=httpx.Response(401))
    report = pull(database, w.org_id, _source([]))
    assert not report.complete and "401" in (report.error or "") and route.call_count == 1


def test_retry_after_http_date() -> None:
    from worker.idp.client import retry_after_s

    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT", 10) == 0.0
    assert retry_after_s("120", 10) == 10
    assert retry_after_s(None, 10) is None
    pytest.importorskip("respx")
