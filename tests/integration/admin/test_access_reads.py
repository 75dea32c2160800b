"""explain / effective permissions / who-can / legacy conflicts return models.access's answers."""

from __future__ import annotations

from models.access.access_model import AccessModel
from models.access.inputs import ResourceRef, User
from models.db.config_loader import load_org_config, load_user_inputs
from tests.integration.admin.conftest import Api, Two


def _setup(api: Api) -> dict[str, str]:
    api.ok("post", "/workspaces", {"id": "prod", "spaces_enabled": True})
    api.ok("post", "/workspaces", {"id": "old", "permissions_model": "legacy"})
    api.ok("post", "/spaces", {"id": "emea", "workspace_id": "prod"})
    ada = api.user("ada")
    bob = api.user("bob")
    eve = api.user("eve", active=False)
    editors = api.group("Editors", members=[ada, eve])
    viewers = api.group("Viewers", members=[bob])
    legacy_a = api.group("Legacy A", members=[bob])
    legacy_b = api.group("Legacy B", members=[bob])
    api.ok(
        "post",
        "/bindings/roles",
        {"group_id": editors, "workspace_id": "prod", "role_id": "editor"},
    )
    api.ok(
        "post",
        "/bindings/roles",
        {"group_id": viewers, "workspace_id": "prod", "role_id": "viewer"},
    )
    api.ok(
        "post",
        "/bindings/spaces",
        {"group_id": editors, "workspace_id": "prod", "space_id": "emea"},
    )
    for g, role in ((legacy_a, "legacy_sync_editor"), (legacy_b, "legacy_workspace_viewer")):
        api.ok("post", "/bindings/roles", {"group_id": g, "workspace_id": "old", "role_id": role})
    return {"ada": ada, "bob": bob, "eve": eve, "editors": editors, "la": legacy_a, "lb": legacy_b}


def _model(api: Api, user_ids: list[str]) -> tuple[AccessModel, dict[str, User]]:
    with api.db.read() as s:
        return AccessModel(load_org_config(s, api.org_id)), load_user_inputs(
            s, api.org_id, user_ids
        )


def test_explain_allow_and_deny_match_access_model(api: Api) -> None:
    ids = _setup(api)
    body = {
        "user": ids["ada"],
        "workspace": "prod",
        "grant": "view_data",
        "resource": {"type": "source", "id": "snowflake"},
    }
    allow = api.ok("post", "/explain", body, status=200)
    model, users = _model(api, [ids["ada"], ids["bob"]])
    expected = model.explain(
        users[ids["ada"]], "prod", "view_data", ResourceRef("source", "snowflake")
    ).to_dict()
    assert (allow["status"], allow["allowed"], allow["reason"]) == ("allow", True, "granted")
    assert (allow["user"], allow["workspace"], allow["root_workspace"]) == (
        ids["ada"],
        "prod",
        "prod",
    )
    assert allow["bindings"] == [
        {"group_id": ids["editors"], "role_id": "editor", "source": "manual"}
    ]
    assert allow["rules"] == list(expected["rules"])
    deny = api.ok("post", "/explain", {**body, "user": ids["bob"]}, status=200)
    assert (deny["status"], deny["reason"]) == ("deny", "grant_missing")
    assert deny["missing"] == ["view_data on source:snowflake"]
    unknown = api.ok("post", "/explain", {**body, "user": "nobody"}, status=200)
    assert (unknown["allowed"], unknown["reason"]) == (False, "unknown_user")
    assert "users.inactive_or_deleted_denied" in unknown["rules"]
    inactive = api.ok("post", "/explain", {**body, "user": ids["eve"]}, status=200)
    assert inactive["reason"] == "user_inactive_or_deleted"
    bad = api.post("/explain", {**body, "grant": "fly"})
    assert bad.status_code == 422 and bad.json()["field"] == "grant"
    sync = api.ok(
        "post",
        "/explain",
        {
            "user": ids["ada"],
            "workspace": "prod",
            "source": {"type": "source", "id": "snowflake"},
            "destination": "braze",
            "space_id": "emea",
            "action": "configure",
        },
        status=200,
    )
    assert (sync["allowed"], sync["reason"]) == (True, "granted")


def test_explain_takes_a_check_body_as_sent(api: Api) -> None:
    """The body of POST /check and /check/sync, org and min_revision included."""
    ids = _setup(api)
    check = {
        "org": api.org_id,
        "min_revision": 3,
        "user": ids["ada"],
        "workspace": "prod",
        "grant": "view_data",
        "resource": {"type": "source", "id": "snowflake"},
    }
    assert api.ok("post", "/explain", check, status=200)["reason"] == "granted"
    assert api.ok("post", "/explain", {**check, "type": "check"}, status=200)["allowed"]
    sync = {
        "org": api.org_id,
        "type": "sync",
        "user": ids["ada"],
        "workspace": "prod",
        "source": "snowflake",
        "destination": "braze",
        "action": "configure",
    }
    # Spaces are on in prod and a sync lives in a Space: the reason names what is missing
    no_space = api.ok("post", "/explain", sync, status=200)
    assert no_space["reason"] == "space_id_required"
    hidden = api.ok("post", "/explain", {**sync, "space_id": "apac"}, status=200)
    assert hidden["reason"] == "space_not_visible"
    assert any("'apac'" in m and "'prod'" in m for m in hidden["missing"])
    assert api.ok("post", "/explain", {**sync, "space_id": "emea"}, status=200)["allowed"]


def test_explain_refuses_old_names_mixed_forms_and_other_orgs(api: Api) -> None:
    ids = _setup(api)
    body = {"user": ids["ada"], "workspace": "prod", "grant": "read"}
    for old, new in (("user_id", "user"), ("workspace_id", "workspace")):
        renamed = {**{k: v for k, v in body.items() if k != new}, old: body[new]}
        resp = api.post("/explain", renamed)
        assert resp.status_code == 422, resp.text
        assert resp.json()["field"] == old and f"use {new}" in resp.json()["detail"]
    resp = api.post("/explain", {**body, "sync": {"source": "s", "destination": "d"}})
    assert resp.status_code == 422 and resp.json()["field"] == "sync"
    resp = api.post("/explain", {**body, "destination": "d"})
    assert resp.status_code == 422 and resp.json()["field"] == "grant"
    resp = api.post("/explain", {**body, "type": "sync", "source": "s", "destination": "d"})
    assert resp.status_code == 422 and resp.json()["field"] == "grant"  # not in a sync
    sync = {"user": ids["ada"], "workspace": "prod", "source": "s", "destination": "d"}
    resp = api.post("/explain", sync)
    assert resp.status_code == 422 and resp.json()["field"] == "action"
    resp = api.post("/explain", {**body, "type": "check", "action": "configure"})
    assert resp.status_code == 422 and resp.json()["field"] == "action"
    resp = api.post("/explain", {**body, "org": "another-org"})
    assert resp.status_code == 403 and resp.json()["field"] == "org"
    resp = api.post("/explain", {**body, "colour": "red"})
    assert resp.status_code == 422 and resp.json()["field"] == "colour"


def test_explain_of_an_unknown_workspace_is_an_error_naming_it(api: Api) -> None:
    """Not a deny: a typo in the workspace would otherwise look like missing access."""
    ids = _setup(api)
    before = len(api.changes())
    for who in (ids["ada"], "nobody"):
        resp = api.post("/explain", {"user": who, "workspace": "prdo", "grant": "read"})
        assert resp.status_code == 422, resp.text
        assert resp.json()["field"] == "workspace" and "'prdo'" in resp.json()["detail"]
    resp = api.post("/who-can", {"workspace": "prdo", "grant": "read"})
    assert resp.status_code == 422 and resp.json()["field"] == "workspace"
    assert len(api.changes()) == before


def test_permissions_who_can_and_conflicts(api: Api) -> None:
    ids = _setup(api)
    perms = api.ok("get", f"/users/{ids['ada']}/permissions")
    by_ws = {w["workspace_id"]: w for w in perms["workspaces"]}
    assert by_ws["prod"]["roles"] == ["editor"]
    assert by_ws["prod"]["visible_spaces"] == ["emea"]
    assert by_ws["old"]["roles"] == []
    assert api.get("/users/nobody/permissions").status_code == 404

    who = api.ok(
        "post",
        "/who-can",
        {"workspace": "prod", "grant": "view_data", "resource": {"type": "source", "id": "s"}},
        status=200,
    )
    assert who["users"] == [ids["ada"]]  # eve is inactive, bob a viewer
    reads = api.ok("post", "/who-can", {"workspace": "prod", "grant": "read"}, status=200)
    assert reads["users"] == sorted([ids["ada"], ids["bob"]])

    conflicts = api.ok("get", "/reports/legacy-conflicts")
    assert conflicts == [
        {
            "user_id": ids["bob"],
            "workspace_id": "old",
            "chosen": "legacy_sync_editor",
            "shadowed": ["legacy_workspace_viewer"],
            "groups_by_role": {
                "legacy_sync_editor": [ids["la"]],
                "legacy_workspace_viewer": [ids["lb"]],
            },
        }
    ]


def test_reads_are_org_scoped(two: Two) -> None:
    ids = _setup(two.a)
    assert two.b.get(f"/users/{ids['ada']}/permissions").status_code == 404
    resp = two.b.post("/who-can", {"workspace": "prod", "grant": "read"})
    assert resp.status_code == 422
    assert two.b.ok("get", "/reports/legacy-conflicts") == []
