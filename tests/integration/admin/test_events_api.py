"""Events derived from the change log (worker.events.derive) and read through the events API
and the webhook endpoints, on each backend: SCIM writes, a role change, a deactivation; a
rolled-back write yields nothing; one organization never sees another's."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from idsync.declarative import apply_config, parse_config
from models.db.config_errors import ConfigError
from models.db.event_tables import Event, WebhookSubscription
from models.db.webhooks import open_secret
from models.secret_box import generate_key
from models.settings import get_settings
from scim.context import ScimContext
from scim.users import patch_user
from tests.integration.admin.conftest import Api, Two
from tests.support.scim_client import group_body, user_body
from worker.events.derive import derive

SECRET = "s3cret-s3cret-s3cret"


def _events(api: Api, after: int = 0, **params: Any) -> dict[str, Any]:
    resp = api.get("/events", params={"after": str(after), **params})
    assert resp.status_code == 200, resp.text
    out: dict[str, Any] = resp.json()
    return out


def _types(page: dict[str, Any]) -> list[str]:
    return [e["type"] for e in page["events"]]


def test_scim_writes_and_a_role_change_become_ordered_events(two: Two) -> None:
    api = two.a
    api.ok("post", "/workspaces", {"id": "prod"})
    ada = api.scim.post("/Users", user_body("ada@example.com")).json()["id"]
    bob = api.scim.post("/Users", user_body("bob@example.com")).json()["id"]
    group = api.scim.post("/Groups", group_body("Editors", [ada])).json()["id"]
    derive(api.db, api.org_id)
    first = _events(api)
    assert _types(first) == [
        "user.created",
        "user.created",
        "group.created",
        "group.membership.added",
    ]
    added = first["events"][3]["data"]
    assert added["group"]["displayName"] == "Editors" and added["user_ids"] == [ada]

    # a role change: ada gains the editor role in prod (the only permissions event)
    api.ok(
        "post", "/bindings/roles", {"group_id": group, "workspace_id": "prod", "role_id": "editor"}
    )
    api.scim.patch(
        f"/Groups/{group}",
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": bob}]}],
        },
    )
    api.scim.patch(
        f"/Users/{ada}",
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": False}],
        },
    )
    report = derive(api.db, api.org_id)
    assert report.changes == 3
    page = _events(api, after=int(first["next_cursor"]))
    assert _types(page) == [
        "group.membership.added",
        "user.deactivated",
        "permissions.changed",
    ]
    perms = page["events"][2]
    # ada was granted the role by the binding and lost it by the deactivation, in the same
    # run: net nothing, so only bob's grant is announced
    assert perms["data"]["user_id"] == bob
    assert perms["data"]["workspace_id"] == "prod"
    assert perms["data"]["granted"]["roles"] == ["editor"]
    assert perms["data"]["revoked"] == {}
    revisions = [e["revision"] for e in first["events"] + page["events"]]
    assert revisions == sorted(revisions)
    sequences = [e["sequence"] for e in first["events"] + page["events"]]
    assert sequences == list(range(1, len(sequences) + 1))

    # a role removal revokes, at the revision of the run
    bindings = api.ok("get", f"/bindings?group_id={group}", status=200)
    binding_id = next(b["id"] for b in bindings if b["kind"] == "role_binding")
    api.ok("delete", f"/bindings/roles/{binding_id}")
    derive(api.db, api.org_id)
    last = _events(api, after=int(page["next_cursor"]))
    assert _types(last) == ["permissions.changed"]
    assert last["events"][0]["data"]["revoked"]["roles"] == ["editor"]
    assert last["events"][0]["data"]["user_id"] == bob


def test_derivation_is_idempotent_and_ids_are_stable(two: Two) -> None:
    api = two.a
    api.scim.post("/Users", user_body("ada@example.com"))
    derive(api.db, api.org_id)
    again = derive(api.db, api.org_id)
    assert again.events == 0
    page = _events(api)
    assert len(page["events"]) == 1
    assert page["events"][0]["id"].startswith("evt_")
    assert _events(api)["events"][0]["id"] == page["events"][0]["id"]


def test_a_rolled_back_write_produces_no_event(two: Two) -> None:
    api = two.a
    ada = api.scim.post("/Users", user_body("ada@example.com")).json()["id"]
    derive(api.db, api.org_id)
    before = _events(api)["events"]
    ctx = ScimContext(org_id=api.org_id, actor="test", base_url="http://idsync.test/scim/v2")
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": False}],
    }
    with pytest.raises(RuntimeError), api.db.write() as session:
        patch_user(session, ctx, ada, body, None)  # change row written ...
        raise RuntimeError("... and the transaction rolled back")
    report = derive(api.db, api.org_id)
    assert report.events == 0
    assert _events(api)["events"] == before
    with api.db.read() as s:
        assert [e.type for e in s.scalars(select(Event))] == ["user.created"]


def test_events_api_pages_and_is_scoped_to_the_organization(two: Two) -> None:
    a, b = two.a, two.b
    for i in range(5):
        a.scim.post("/Users", user_body(f"u{i}@a.example"))
    b.scim.post("/Users", user_body("only@b.example"))
    derive(a.db, a.org_id)
    derive(b.db, b.org_id)
    seen: list[str] = []
    cursor = 0
    while True:
        page = _events(a, after=cursor, limit=2)
        seen += [e["data"]["user"]["userName"] for e in page["events"]]
        cursor = int(page["next_cursor"])
        if not page["has_more"]:
            break
    assert seen == [f"u{i}@a.example" for i in range(5)]
    assert [e["data"]["user"]["userName"] for e in _events(b)["events"]] == ["only@b.example"]
    assert _events(a, types="group.created")["events"] == []
    assert a.get("/events", params={"types": "no.such"}).status_code == 422
    assert a.get("/events", params={"after": "x"}).status_code == 422


def _with_key(two: Two) -> None:
    app: Any = two.a.client.app
    app.state.settings = app.state.settings.model_copy(
        update={"secret_key": SecretStr(generate_key())}
    )


def test_webhooks_are_org_scoped_and_the_secret_is_write_only(two: Two) -> None:
    a, b = two.a, two.b
    body = {"url": "https://hooks.example/idsync", "events": ["user.created"], "secret": SECRET}
    assert a.post("/webhooks", body).status_code == 503  # no IDSYNC_SECRET_KEY: the operator's
    _with_key(two)
    sub = a.ok("post", "/webhooks", body)
    assert "secret" not in sub and sub["state"] == "active" and sub["events"] == ["user.created"]
    assert a.post("/webhooks", {**body, "secret": "short"}).status_code == 422
    assert a.post("/webhooks", {**body, "events": ["nope"]}).status_code == 422
    assert a.post("/webhooks", {**body, "url": "ftp://x"}).status_code == 422
    inside = a.post("/webhooks", {**body, "url": "http://127.0.0.1:6379/"})
    assert inside.status_code == 422 and "IDSYNC_OUTBOUND_ALLOW_PRIVATE" in inside.text
    assert [w["id"] for w in a.ok("get", "/webhooks")["webhooks"]] == [sub["id"]]
    assert b.ok("get", "/webhooks")["webhooks"] == []
    assert b.get(f"/webhooks/{sub['id']}").status_code == 404
    assert b.get(f"/webhooks/{sub['id']}/deliveries").status_code == 404
    assert b.delete(f"/webhooks/{sub['id']}").status_code == 404
    with a.db.read() as s:
        row = s.get(WebhookSubscription, sub["id"])
        assert row is not None and SECRET not in row.secret_sealed
        settings: Any = a.client.app.state.settings  # type: ignore[attr-defined]
        assert open_secret(settings.secret_box(), row.secret_sealed) == SECRET
    a.scim.post("/Users", user_body("ada@example.com"))
    derive(a.db, a.org_id)
    event_id = _events(a)["events"][0]["id"]
    assert b.post(f"/webhooks/{sub['id']}/deliveries/{event_id}/redeliver").status_code == 404
    queued = a.ok("post", f"/webhooks/{sub['id']}/deliveries/{event_id}/redeliver", status=202)
    assert queued["redelivery_pending"] is True
    a.ok("delete", f"/webhooks/{sub['id']}")
    assert a.ok("get", "/webhooks")["webhooks"] == []


def test_declared_webhooks_are_applied_idempotently(
    two: Two, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDSYNC_SECRET_KEY", generate_key())
    get_settings.cache_clear()
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    text = """
organization: acme
webhooks:
  - url: https://hooks.example/a
    events: [user.created]
    secret_env: HOOK_SECRET
  - url: https://hooks.example/b
    secret_env: HOOK_SECRET
"""
    config = parse_config(text)
    try:
        with two.a.db.write() as s:
            first = apply_config(s, two.a.org_id, config, actor="test")
        assert sorted(first.diff) == [
            "+ webhook https://hooks.example/a",
            "+ webhook https://hooks.example/b",
        ]
        with two.a.db.write() as s:
            assert apply_config(s, two.a.org_id, config, actor="test").diff == []
        monkeypatch.setenv("HOOK_SECRET", SECRET + "-rotated")
        fewer = parse_config(text.split("  - url: https://hooks.example/b", maxsplit=1)[0])
        with two.a.db.write() as s:
            diff = apply_config(s, two.a.org_id, fewer, actor="test").diff
        assert diff == ["~ webhook https://hooks.example/a", "- webhook https://hooks.example/b"]
        assert two.b.ok("get", "/webhooks")["webhooks"] == []
        monkeypatch.delenv("HOOK_SECRET")
        with pytest.raises(ConfigError, match="HOOK_SECRET is not set"), two.a.db.write() as s:
            apply_config(s, two.a.org_id, fewer, actor="test")
    finally:
        get_settings.cache_clear()


def test_a_backlog_is_derived_run_by_run_in_order(two: Two) -> None:
    api = two.a
    for i in range(5):
        api.scim.post("/Users", user_body(f"u{i}@example.com"))
    runs = []
    while True:
        report = derive(api.db, api.org_id, limit=2)
        runs.append(report.changes)
        if not report.more:
            break
    assert runs == [2, 2, 1]
    page = _events(api)
    names = [e["data"]["user"]["userName"] for e in page["events"]]
    assert names == [f"u{i}@example.com" for i in range(5)]
    assert [e["revision"] for e in page["events"]] == [1, 2, 3, 4, 5]


def test_a_rename_with_a_membership_change_is_both_events(two: Two) -> None:
    """One SCIM write that renames a group and changes its members records a change row
    for each (the rename re-applies mapping rules to the new name), so neither event is
    lost: a PATCH gives group.renamed then the membership events, a PUT group.updated."""
    api = two.a
    ada = api.scim.post("/Users", user_body("ada@example.com")).json()["id"]
    bob = api.scim.post("/Users", user_body("bob@example.com")).json()["id"]
    group = api.scim.post("/Groups", group_body("Editors", [ada])).json()["id"]
    derive(api.db, api.org_id)
    start = int(_events(api)["next_cursor"])
    patched = api.scim.patch(
        f"/Groups/{group}",
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [
                {"op": "replace", "path": "displayName", "value": "Writers"},
                {"op": "add", "path": "members", "value": [{"value": bob}]},
            ],
        },
    )
    assert patched.status_code in (200, 204), patched.text
    put = api.scim.put(f"/Groups/{group}", group_body("Authors", [bob]))
    assert put.status_code == 200, put.text
    assert derive(api.db, api.org_id).changes == 4  # two writes, two rows each
    page = _events(api, after=start)
    assert _types(page) == [
        "group.renamed",
        "group.membership.added",
        "group.updated",
        "group.membership.removed",
    ]
    names = [e["data"]["group"]["displayName"] for e in page["events"]]
    assert names[0] in ("Writers", "Authors") and names[2] == "Authors"
    assert page["events"][1]["data"]["user_ids"] == [bob]
    assert page["events"][3]["data"]["user_ids"] == [ada]
