"""explain / effective permissions / who-can / legacy conflicts return models.access's answers."""

from __future__ import annotations

from models.access.access_model import AccessModel
from models.access.inputs import ResourceRef
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
    api.ok("post", "/bindings/spaces", {"group_id": editors, "space_id": "emea"})
    for g, role in ((legacy_a, "legacy_sync_editor"), (legacy_b, "legacy_workspace_viewer")):
        api.ok("post", "/bindings/roles", {"group_id": g, "workspace_id": "old", "role_id": role})
    return {"ada": ada, "bob": bob, "eve": eve, "editors": editors, "la": legacy_a, "lb": legacy_b}


def _model(api: Api, user_ids: list[str]) -> tuple[AccessModel, dict]:
    with api.db.read() as s:
        return AccessModel(load_org_config(s, api.org_id)), load_user_inputs(
            s, api.org_id, user_ids
        )


def test_explain_allow_and_deny_match_access_model(api: Api) -> None:
    ids = _setup(api)
    body = {
        "user_id": ids["ada"],
        "workspace_id": "prod",
        "grant": "view_data",
        "resource": {"type": "source", "id": "snowflake"},
    }
    allow = api.ok("post", "/explain", body, status=200)
    model, users = _model(api, [ids["ada"], ids["bob"]])
    expected = model.explain(
        users[ids["ada"]], "prod", "view_data", ResourceRef("source", "snowflake")
    ).to_dict()
    assert allow["allowed"] is True
    assert allow["bindings"] == [
        {"group_id": ids["editors"], "role_id": "editor", "source": "manual"}
    ]
    assert allow["rules"] == list(expected["rules"])
    deny = api.ok("post", "/explain", {**body, "user_id": ids["bob"]}, status=200)
    assert deny["allowed"] is False and deny["missing"]
    unknown = api.ok("post", "/explain", {**body, "user_id": "nobody"}, status=200)
    assert unknown["allowed"] is False
    assert "users.inactive_or_deleted_denied" in unknown["rules"]
    bad = api.post("/explain", {**body, "grant": "fly"})
    assert bad.status_code == 422 and bad.json()["field"] == "grant"
    missing_ws = api.post("/explain", {**body, "workspace_id": "nope"})
    assert missing_ws.status_code == 422 and missing_ws.json()["field"] == "workspace_id"
    sync = api.ok(
        "post",
        "/explain",
        {
            "user_id": ids["ada"],
            "workspace_id": "prod",
            "sync": {
                "source": {"type": "source", "id": "snowflake"},
                "destination": {"type": "destination", "id": "braze"},
                "space_id": "emea",
            },
            "action": "configure",
        },
        status=200,
    )
    assert sync["allowed"] is True


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
        {"workspace_id": "prod", "grant": "view_data", "resource": {"type": "source", "id": "s"}},
        status=200,
    )
    assert who["user_ids"] == [ids["ada"]]  # eve is inactive, bob a viewer
    reads = api.ok("post", "/who-can", {"workspace_id": "prod", "grant": "read"}, status=200)
    assert reads["user_ids"] == sorted([ids["ada"], ids["bob"]])

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
    resp = two.b.post("/who-can", {"workspace_id": "prod", "grant": "read"})
    assert resp.status_code == 422
    assert two.b.ok("get", "/reports/legacy-conflicts") == []
