"""Admin API CRUD: auth, validation (4xx naming the field), atomicity, change rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from models.db.config_tables import ConfigWorkspace, RoleBindingRow
from tests.integration.admin.conftest import Api, Two

V2_ROLE = {
    "id": "eu-analyst",
    "name": "EU analyst",
    "model": "v2",
    "workspace_grants": ["access_agents"],
    "resource_grants": [
        {"scope": "source", "resource_id": "*", "grants": ["view_data"]},
        {
            "scope": "parent_model",
            "resource_id": "customers",
            "grants": ["view_parent_model_data"],
            "subset_limit": {"region": ["EU"]},
        },
    ],
}


def test_auth_required_and_scoped(two: Two) -> None:
    client = two.a.client
    assert client.get("/api/v1/workspaces").status_code == 401
    bad = client.get("/api/v1/workspaces", headers={"Authorization": "Bearer idsync_admin_x"})
    assert bad.status_code == 401
    assert bad.json()["field"] == "Authorization"
    scim_token = client.get(
        "/api/v1/workspaces", headers={"Authorization": f"Bearer {two.a.scim.token}"}
    )
    assert scim_token.status_code == 401
    assert two.a.ok("get", "/organization")["name"] == "acme"
    assert two.b.ok("get", "/organization")["name"] == "globex"


def test_workspace_crud_and_change_rows(api: Api) -> None:
    ws = api.ok("post", "/workspaces", {"id": "prod", "name": "Prod", "spaces_enabled": True})
    assert ws["permissions_model"] == "v2"
    env = api.ok("post", "/workspaces", {"id": "dev", "parent_workspace_id": "prod"})
    assert env["parent_workspace_id"] == "prod"
    assert [w["id"] for w in api.ok("get", "/workspaces")] == ["dev", "prod"]
    updated = api.ok("patch", "/workspaces/prod", {"approvals_required": True})
    assert updated["approvals_required"] and updated["spaces_enabled"]
    before = len(api.changes())
    api.ok("patch", "/workspaces/prod", {"approvals_required": True})  # no-op
    assert len(api.changes()) == before
    refused = api.delete("/workspaces/prod")
    assert refused.status_code == 409 and refused.json()["field"] == "id"
    api.ok("delete", "/workspaces/dev")
    api.ok("delete", "/workspaces/prod")
    assert api.get("/workspaces/prod").status_code == 404
    kinds = [c.kind for c in api.changes()]
    assert kinds == [
        "config.workspace.created",
        "config.workspace.created",
        "config.workspace.updated",
        "config.workspace.deleted",
        "config.workspace.deleted",
    ]
    revisions = [c.revision for c in api.changes()]
    assert revisions == sorted(revisions) and len(set(revisions)) == len(revisions)


def test_workspace_validation_names_fields(api: Api) -> None:
    api.ok("post", "/workspaces", {"id": "prod"})
    cases = [
        ({"id": "bad id!"}, 422, "id"),
        ({"id": "x", "permissions_model": "v3"}, 422, "permissions_model"),
        ({"id": "x", "parent_workspace_id": "nope"}, 422, "parent_workspace_id"),
        ({"id": "x", "colour": "red"}, 422, "colour"),
        ({"id": "prod"}, 409, "id"),
    ]
    for body, status, field in cases:
        resp = api.post("/workspaces", body)
        assert resp.status_code == status, (body, resp.text)
        assert resp.json()["field"] == field, resp.json()
    cycle = api.patch("/workspaces/prod", {"parent_workspace_id": "prod"})
    assert cycle.status_code == 422 and cycle.json()["field"] == "parent_workspace_id"


def test_custom_roles_validated_by_access_model(api: Api) -> None:
    created = api.ok("post", "/roles", V2_ROLE)
    assert created["builtin"] is False
    ids = [r["id"] for r in api.ok("get", "/roles")]
    assert {"admin", "editor", "legacy_admin", "eu-analyst"} <= set(ids)
    bad_grant = {**V2_ROLE, "id": "r2", "workspace_grants": ["fly"]}
    resp = api.post("/roles", bad_grant)
    assert resp.status_code == 422
    assert resp.json()["field"] == "workspace_grants[0]"
    assert "fly" in resp.json()["detail"]
    nested = {
        **V2_ROLE,
        "id": "r3",
        "resource_grants": [{"scope": "source", "resource_id": "*", "grants": ["nope"]}],
    }
    assert api.post("/roles", nested).json()["field"] == "resource_grants[0].grants[0]"
    reserved = api.post("/roles", {**V2_ROLE, "id": "admin"})
    assert reserved.status_code == 422 and reserved.json()["field"] == "id"
    legacy = {
        "id": "prod-syncs",
        "name": "Production syncs",
        "model": "legacy",
        "statements": [
            {
                "effect": "allow",
                "actions": ["read", "start"],
                "resource": "sync",
                "conditions": {"labels": {"environment": "production"}},
            }
        ],
    }
    api.ok("post", "/roles", legacy)
    bad_legacy = {
        **legacy,
        "id": "l2",
        "statements": [{"actions": ["start"], "resource": "source"}],
    }
    resp = api.post("/roles", bad_legacy)
    assert resp.status_code == 422 and resp.json()["field"] == "statements[0].actions[0]"
    api.ok("put", "/roles/eu-analyst", {**V2_ROLE, "name": "EU analysts"})
    assert api.ok("get", "/roles/eu-analyst")["name"] == "EU analysts"
    assert api.put("/roles/admin", {**V2_ROLE, "id": "admin"}).status_code == 422


def test_bindings_validation_and_role_change_impact(two: Two) -> None:
    api = two.a
    api.ok("post", "/workspaces", {"id": "prod"})
    api.ok("post", "/workspaces", {"id": "old", "permissions_model": "legacy"})
    api.ok("post", "/roles", V2_ROLE)
    regions = {"categories": [{"name": "region"}]}  # the role limits customers by region
    api.ok("put", "/workspaces/prod/parent-models/customers/subset-categories", regions)
    g1 = api.group("Analysts")
    g2 = api.group("Admins")
    foreign = two.b.group("Theirs")
    rb = api.ok(
        "post", "/bindings/roles", {"group_id": g1, "workspace_id": "prod", "role_id": "eu-analyst"}
    )
    assert rb["source"] == "manual"
    api.ok("post", "/bindings/org-admins", {"group_id": g2})
    bad = [
        ({"group_id": foreign, "workspace_id": "prod", "role_id": "editor"}, "group_id"),
        ({"group_id": "nope", "workspace_id": "prod", "role_id": "editor"}, "group_id"),
        ({"group_id": g1, "workspace_id": "nope", "role_id": "editor"}, "workspace_id"),
        ({"group_id": g1, "workspace_id": "prod", "role_id": "nope"}, "role_id"),
        ({"group_id": g1, "workspace_id": "old", "role_id": "editor"}, "role_id"),
        ({"group_id": g1, "workspace_id": "prod", "role_id": "legacy_admin"}, "role_id"),
    ]
    for body, field in bad:
        resp = api.post("/bindings/roles", body)
        assert resp.status_code == 422, (body, resp.text)
        assert resp.json()["field"] == field
    dup = api.post(
        "/bindings/roles", {"group_id": g1, "workspace_id": "prod", "role_id": "eu-analyst"}
    )
    assert dup.status_code == 409
    # changing the role: change row names the bound group
    api.ok("put", "/roles/eu-analyst", {**V2_ROLE, "workspace_grants": []})
    last = api.changes()[-1]
    assert last.kind == "config.role.updated" and last.group_ids == [g1]
    # changing workspace settings: groups bound there plus org admins
    api.ok("patch", "/workspaces/prod", {"approvals_required": True})
    last = api.changes()[-1]
    assert last.kind == "config.workspace.updated" and set(last.group_ids) == {g1, g2}
    # org b sees none of it
    assert two.b.ok("get", "/bindings") == []
    assert two.b.get("/workspaces/prod").status_code == 404
    assert two.b.delete(f"/bindings/roles/{rb['id']}").status_code == 404
    assert two.b.get("/roles/eu-analyst").status_code == 404
    api.ok("delete", f"/bindings/roles/{rb['id']}")
    assert api.changes()[-1].group_ids == [g1]


def test_cross_org_space_assignment_and_spaces(two: Two) -> None:
    two.a.ok("post", "/workspaces", {"id": "prod", "spaces_enabled": True})
    two.b.ok("post", "/workspaces", {"id": "prod"})
    two.a.ok("post", "/spaces", {"id": "emea", "workspace_id": "prod", "name": "EMEA"})
    g_b = two.b.group("B")
    body = {"group_id": g_b, "workspace_id": "prod", "space_id": "emea"}
    resp = two.b.post("/bindings/spaces", body)
    assert resp.status_code == 422 and resp.json()["field"] == "space_id"
    g_a = two.a.group("A")
    two.a.ok("post", "/bindings/spaces", {**body, "group_id": g_a})
    assert [s["id"] for s in two.a.ok("get", "/spaces")] == ["emea"]
    assert two.b.ok("get", "/spaces") == []
    assert two.b.get("/workspaces/prod/spaces/emea").status_code == 404
    two.a.ok("patch", "/workspaces/prod/spaces/emea", {"name": "Europe"})
    two.a.ok("delete", "/workspaces/prod/spaces/emea")
    assert two.a.changes()[-1].group_ids == [g_a]


def test_failed_write_leaves_nothing(two: Two) -> None:
    api = two.a
    api.ok("post", "/workspaces", {"id": "prod"})
    count = two.change_count()
    with api.db.read() as s:
        ws_before = s.scalar(select(func.count()).select_from(ConfigWorkspace))
        rb_before = s.scalar(select(func.count()).select_from(RoleBindingRow))
    bad_rule = {"attribute": "displayName", "match": "regex", "pattern": "(a", "role": "viewer"}
    assert api.post("/mapping-rules", bad_rule).json()["field"] == "pattern"
    assert api.post("/workspaces", {"id": "x", "parent_workspace_id": "nope"}).status_code == 422
    assert api.post("/roles", {**V2_ROLE, "workspace_grants": ["fly"]}).status_code == 422
    assert two.change_count() == count
    with api.db.read() as s:
        assert s.scalar(select(func.count()).select_from(ConfigWorkspace)) == ws_before
        assert s.scalar(select(func.count()).select_from(RoleBindingRow)) == rb_before


def test_subsets_and_resources(api: Api) -> None:
    api.ok("post", "/workspaces", {"id": "prod"})
    g = api.group("G")
    api.ok("post", "/bindings/roles", {"group_id": g, "workspace_id": "prod", "role_id": "viewer"})
    body = {"categories": [{"name": "region", "required": True}, {"name": "consent"}]}
    api.ok("put", "/workspaces/prod/parent-models/customers/subset-categories", body)
    assert api.changes()[-1].kind == "config.subsets.updated"
    assert api.changes()[-1].group_ids == [g]
    n = len(api.changes())
    api.ok("put", "/workspaces/prod/parent-models/customers/subset-categories", body)
    assert len(api.changes()) == n
    listed = api.ok("get", "/workspaces/prod/subset-categories")
    assert listed[0]["parent_model_id"] == "customers"
    assert {c["name"] for c in listed[0]["categories"]} == {"region", "consent"}
    api.ok("put", "/workspaces/prod/resources/sync/s1", {"labels": {"environment": "production"}})
    assert api.ok("get", "/workspaces/prod/resources")[0]["labels"] == {"environment": "production"}
    bad = api.put("/workspaces/prod/resources/rocket/s1", {"labels": {}})
    assert bad.status_code == 422 and bad.json()["field"] == "type"
    api.ok("delete", "/workspaces/prod/resources/sync/s1")


def test_openapi_lists_admin_api(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    assert "/api/v1/workspaces" in doc["paths"]
    assert "/api/v1/explain" in doc["paths"]


def test_values_no_backend_can_store_are_refused_not_500(two: Two) -> None:
    """U+0000 (PostgreSQL cannot store it) and unpaired surrogates (UTF-8 cannot) are
    refused before a handler binds them: 422 in a body or query, 404 in a path; nothing
    is written, on either backend."""
    api = two.a
    before = two.change_count()
    headers = {"Authorization": f"Bearer {api.key}", "Content-Type": "application/json"}
    for body in (
        b'{"name": "a\\u0000b"}',
        b'{"name": "ok", "id": "w\\u0000"}',
        b'{"name": "\\ud800"}',
    ):
        r = api.client.post("/api/v1/workspaces", content=body, headers=headers)
        assert r.status_code == 422, r.text
        assert "U+0000" in r.json()["detail"] or "surrogate" in r.json()["detail"]
    ws = api.ok("post", "/workspaces", {"name": "kept"})["id"]
    r = api.client.patch(
        f"/api/v1/workspaces/{ws}", content=b'{"name": "\\u0000"}', headers=headers
    )
    assert r.status_code == 422, r.text
    for path in (
        "/workspaces/a%00b",
        "/workspaces/w/spaces/a%00b",
        "/roles/a%00b",
        "/mapping-rules/a%00b",
    ):
        assert api.get(path).status_code == 404
    assert api.delete("/workspaces/a%00b").status_code == 404
    assert api.get("/workspaces", params={"parent": "a\x00"}).status_code == 422
    check = api.client.post(
        "/api/v1/check",
        json={"user_id": "u\x00", "workspace_id": ws, "action": "create_sources"},
        headers=headers,
    )
    assert check.status_code == 422, check.text
    assert two.change_count() == before + 1  # the one workspace that was created
    assert api.ok("get", f"/workspaces/{ws}")["name"] == "kept"


def test_admin_writes_record_the_request_id(api: Api) -> None:
    """The change log answers "which request did this" for admin writes as for SCIM."""
    group = api.group("Editors")

    def post(path: str, body: object, request_id: str) -> Any:
        headers = {"Authorization": f"Bearer {api.key}", "X-Request-Id": request_id}
        return api.client.post(f"/api/v1{path}", json=body, headers=headers)

    made = post("/workspaces", {"id": "mkt", "name": "Marketing"}, "req-admin-1")
    assert made.status_code == 201, made.text
    bound = post(
        "/bindings/roles",
        {"group_id": group, "workspace_id": "mkt", "role_id": "viewer"},
        "req-admin-2",
    )
    assert bound.status_code == 201, bound.text
    by_kind = {c.kind: c.request_id for c in api.changes()}
    assert by_kind["config.workspace.created"] == "req-admin-1"
    bindings = [c.request_id for c in api.changes() if c.kind.startswith("config.binding")]
    assert bindings == ["req-admin-2"]


def test_a_role_binding_changes_role_in_place(two: Two) -> None:
    """PUT/PATCH /bindings/roles/{id} {role_id}: one change row naming the group, the
    binding keeps its id, group and workspace; the members' permissions follow."""
    api = two.a
    api.ok("post", "/workspaces", {"id": "prod"})
    api.ok("post", "/workspaces", {"id": "old", "permissions_model": "legacy"})
    ada = api.user("ada")
    g = api.group("Analysts", members=[ada])
    other = api.group("Others")
    rb = api.ok(
        "post", "/bindings/roles", {"group_id": g, "workspace_id": "prod", "role_id": "viewer"}
    )
    n = len(api.changes())
    changed = api.ok("put", f"/bindings/roles/{rb['id']}", {"role_id": "editor"})
    assert {k: changed[k] for k in ("id", "group_id", "workspace_id", "role_id", "source")} == {
        "id": rb["id"],
        "group_id": g,
        "workspace_id": "prod",
        "role_id": "editor",
        "source": "manual",
    }
    changes = api.changes()[n:]
    assert [(c.kind, c.resource_type, c.resource_id, c.group_ids) for c in changes] == [
        ("config.binding.updated", "role_binding", rb["id"], [g])
    ]
    assert "viewer -> editor" in changes[0].summary
    perms = api.ok("get", f"/users/{ada}/permissions")
    assert {w["workspace_id"]: w["roles"] for w in perms["workspaces"]}["prod"] == ["editor"]
    # PATCH is the same; the same role again writes nothing
    api.ok("patch", f"/bindings/roles/{rb['id']}", {"role_id": "draft_editor"})
    n = len(api.changes())
    api.ok("patch", f"/bindings/roles/{rb['id']}", {"role_id": "draft_editor"})
    assert len(api.changes()) == n
    # refused, naming the field, nothing written
    for body, status, field in (
        ({"role_id": "legacy_admin"}, 422, "role_id"),
        ({"role_id": "nope"}, 422, "role_id"),
        ({"role_id": "viewer", "workspace_id": "old"}, 422, "workspace_id"),
        ({}, 422, "role_id"),
    ):
        resp = api.put(f"/bindings/roles/{rb['id']}", body)
        assert (resp.status_code, resp.json()["field"]) == (status, field), resp.text
    api.ok("post", "/bindings/roles", {"group_id": g, "workspace_id": "prod", "role_id": "viewer"})
    dup = api.put(f"/bindings/roles/{rb['id']}", {"role_id": "viewer"})
    assert dup.status_code == 409 and dup.json()["field"] == "role_id"
    assert api.put("/bindings/roles/nope", {"role_id": "viewer"}).status_code == 404
    assert two.b.put(f"/bindings/roles/{rb['id']}", {"role_id": "viewer"}).status_code == 404
    assert len(api.changes()) == n + 1  # only the second POST
    # a rule-made binding follows its rule
    rule = {
        "id": "others",
        "attribute": "displayName",
        "match": "exact",
        "pattern": "Others",
        "workspace": "prod",
        "role": "viewer",
    }
    api.ok("post", "/mapping-rules", rule)
    made = api.ok("get", f"/bindings?group_id={other}")[0]
    resp = api.patch(f"/bindings/roles/{made['id']}", {"role_id": "editor"})
    assert resp.status_code == 409 and "others" in resp.json()["detail"]
