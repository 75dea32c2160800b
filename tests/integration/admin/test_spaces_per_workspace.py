"""Space ids are unique per workspace: two workspaces may both have a Space `uk`, and
everything that names a Space names it within its workspace (issue 11, item 5)."""

from __future__ import annotations

import pytest

from idsync.declarative import apply_file, parse_config
from models.access.access_model import AccessModel
from models.access.inputs import ResourceRef
from models.db.config_errors import ConfigError
from models.db.config_loader import load_org_config, load_user_inputs
from models.db.tables import Organization
from tests.integration.admin.conftest import Api


def _two_uks(api: Api) -> dict[str, str]:
    for ws in ("eu", "us"):
        api.ok("post", "/workspaces", {"id": ws, "spaces_enabled": True})
        api.ok("post", "/spaces", {"id": "uk", "workspace_id": ws, "name": f"UK of {ws}"})
    ada = api.user("ada")
    g = api.group("Editors", members=[ada])
    for ws in ("eu", "us"):
        api.ok("post", "/bindings/roles", {"group_id": g, "workspace_id": ws, "role_id": "editor"})
    return {"ada": ada, "g": g}


def test_the_same_space_id_in_two_workspaces(api: Api) -> None:
    ids = _two_uks(api)
    dup = api.post("/spaces", {"id": "uk", "workspace_id": "eu"})
    assert dup.status_code == 409 and dup.json()["field"] == "id"
    assert [(s["workspace_id"], s["id"]) for s in api.ok("get", "/spaces")] == [
        ("eu", "uk"),
        ("us", "uk"),
    ]
    assert api.ok("get", "/workspaces/us/spaces/uk")["name"] == "UK of us"
    assert api.get("/workspaces/eu/spaces/fr").status_code == 404

    # assigned to eu's uk only: visible in eu, not in us
    made = api.ok(
        "post", "/bindings/spaces", {"group_id": ids["g"], "workspace_id": "eu", "space_id": "uk"}
    )
    assert (made["workspace_id"], made["space_id"]) == ("eu", "uk")
    assert api.changes()[-1].summary == "eu/uk"
    perms = api.ok("get", f"/users/{ids['ada']}/permissions")
    visible = {w["workspace_id"]: w["visible_spaces"] for w in perms["workspaces"]}
    assert visible == {"eu": ["uk"], "us": []}
    audience = {"type": "audience", "id": "customers", "space_id": "uk"}
    body = {"user": ids["ada"], "grant": "configure_audiences_syncs", "resource": audience}
    assert api.ok("post", "/explain", {**body, "workspace": "eu"}, status=200)["allowed"]
    us = api.ok("post", "/explain", {**body, "workspace": "us"}, status=200)
    assert (us["allowed"], us["reason"]) == (False, "space_not_visible")
    assert us["missing"][0].startswith("Space 'uk' of workspace 'us' visible")
    with api.db.read() as s:
        model = AccessModel(load_org_config(s, api.org_id))
        user = load_user_inputs(s, api.org_id, [ids["ada"]])[ids["ada"]]
    ref = ResourceRef.audience("customers", "uk")
    assert model.check(user, "eu", "configure_audiences_syncs", ref)
    assert not model.check(user, "us", "configure_audiences_syncs", ref)
    compiled = model.compile_user(user)  # what the worker writes to the cache
    assert compiled["eu"].spaces == frozenset({"uk"}) and compiled["us"].spaces == frozenset()

    # an assignment names a Space of its workspace; bindings filter by workspace
    wrong = api.post(
        "/bindings/spaces", {"group_id": ids["g"], "workspace_id": "eu", "space_id": "fr"}
    )
    assert wrong.status_code == 422 and "'eu'" in wrong.json()["detail"]
    listed = api.ok("get", "/bindings?workspace_id=us")
    assert [b["kind"] for b in listed] == ["role_binding"]

    # deleting us's uk leaves eu's and its assignment alone
    api.ok("delete", "/workspaces/us/spaces/uk")
    assert api.changes()[-1].resource_id == "us/uk"
    assert [(s["workspace_id"], s["id"]) for s in api.ok("get", "/spaces")] == [("eu", "uk")]
    assert len(api.ok("get", "/bindings?workspace_id=eu")) == 2
    api.ok("delete", "/workspaces/eu")
    assert api.ok("get", "/bindings?workspace_id=eu") == []


def test_space_rules_name_the_workspace_when_a_space_id_is_ambiguous(api: Api) -> None:
    ids = _two_uks(api)
    api.group("uk-team")
    ambiguous = {
        "id": "uk",
        "attribute": "displayName",
        "match": "prefix",
        "pattern": "uk-",
        "kind": "space",
        "space": "uk",
    }
    out = api.ok("post", "/mapping-rules", ambiguous)
    assert out["application"]["created"] == []
    (problem,) = out["application"]["problems"]
    assert problem["field"] == "space" and "eu, us" in problem["message"]
    fixed = api.ok("put", "/mapping-rules/uk", {**ambiguous, "workspace": "us"}, status=200)
    assert [b["target"] for b in fixed["application"]["created"]] == ["us/uk"]
    captured = {
        "id": "cap",
        "attribute": "displayName",
        "match": "regex",
        "pattern": "(?P<space>[a-z]+)-team",
        "kind": "space",
        "workspace": "eu",
    }
    out = api.ok("post", "/mapping-rules", captured)
    assert [b["target"] for b in out["application"]["created"]] == ["eu/uk"]
    both = api.post(
        "/mapping-rules", {**captured, "id": "x", "pattern": "(?P<workspace>a)(?P<space>b)"}
    )
    assert both.status_code == 422 and both.json()["field"] == "workspace"
    # renaming the workspace a rule names re-applies it
    api.ok("patch", "/workspaces/us", {"name": "America"})
    kept = api.ok("get", "/bindings?source=uk")
    assert [(b["workspace_id"], b["space_id"]) for b in kept] == [("us", "uk")]
    assert ids


def test_declarative_assignments_name_the_workspace(api: Api) -> None:
    api.group("Editors")
    text = """
organization: acme
workspaces:
  - {id: eu, spaces_enabled: true, spaces: [{id: uk, name: UK}]}
  - {id: us, spaces_enabled: true, spaces: [{id: uk, name: UK}]}
bindings:
  roles:
    - {group: Editors, workspace: eu, role: editor}
  spaces:
    - {group: Editors, workspace: us, space: uk}
"""
    with api.db.read() as s:
        org = s.get(Organization, api.org_id)
        assert org is not None
        name = org.name
    result = apply_file(api.db, name, parse_config(text), dry_run=False, actor="test")
    assert "+ space uk in eu" in result.diff and "+ space uk in us" in result.diff
    assert "+ space assignment Editors -> us/uk" in result.diff
    again = apply_file(api.db, name, parse_config(text), dry_run=False, actor="test")
    assert again.diff == []
    moved = text.replace(
        "{group: Editors, workspace: us, space: uk}", "{group: Editors, workspace: eu, space: uk}"
    )
    result = apply_file(api.db, name, parse_config(moved), dry_run=False, actor="test")
    assert sorted(result.diff) == [
        "+ space assignment Editors -> eu/uk",
        f"- space assignment {api.ok('get', '/groups')[0]['id']} -> us/uk",
    ]
    missing = text.replace(
        "{group: Editors, workspace: us, space: uk}", "{group: Editors, space: uk}"
    )
    with pytest.raises(ConfigError) as refused:
        apply_file(api.db, name, parse_config(missing), dry_run=False, actor="test")
    assert refused.value.field == "bindings.spaces[0].workspace"
