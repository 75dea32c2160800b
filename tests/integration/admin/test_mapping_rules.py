"""Mapping rules end to end: SCIM groups -> rule-made bindings with provenance."""

from __future__ import annotations

from models.db.config_store import apply_mapping_rules
from tests.integration.admin.conftest import Api
from tests.support.scim_client import group_body

DS_RULE = {
    "id": "ds",
    "attribute": "displayName",
    "match": "regex",
    "pattern": r"^ds-(?P<workspace>[a-z0-9-]+)-(?P<role>admin|editor|viewer)$",
}


def _role_bindings(api: Api, group_id: str) -> list[tuple[str, str, str]]:
    return sorted(
        (b["workspace_id"], b["role_id"], b["source"])
        for b in api.ok("get", f"/bindings?group_id={group_id}")
        if b["kind"] == "role_binding"
    )


def _worker_applies(api: Api, group_id: str) -> None:
    """What the worker does for a SCIM group.created / group.renamed change row."""
    with api.db.write() as s:
        apply_mapping_rules(s, api.org_id, group_ids=[group_id], actor="worker")


def test_regex_rule_binds_scim_groups_and_follows_renames(api: Api) -> None:
    api.ok("post", "/workspaces", {"id": "marketing"})
    api.ok("post", "/workspaces", {"id": "sales"})
    api.ok("post", "/workspaces", {"id": "old", "permissions_model": "legacy"})
    created = api.scim.post("/Groups", group_body("ds-marketing-editor"))
    assert created.status_code == 201, created.text
    gid = created.json()["id"]
    manual = api.ok(
        "post", "/bindings/roles", {"group_id": gid, "workspace_id": "sales", "role_id": "viewer"}
    )
    result = api.ok("post", "/mapping-rules", DS_RULE)
    assert result["application"]["created"] == [
        {"kind": "workspace_role", "group_id": gid, "target": "marketing/editor", "source": "ds"}
    ]
    assert api.changes()[-1].kind == "config.rule.created"
    assert api.changes()[-1].group_ids == [gid]
    assert _role_bindings(api, gid) == [
        ("marketing", "editor", "ds"),
        ("sales", "viewer", "manual"),
    ]

    # rename over SCIM; the worker re-applies the rules for the group
    renamed = api.scim.patch(
        f"/Groups/{gid}",
        api.scim.ops({"op": "replace", "path": "displayName", "value": "ds-old-admin"}),
    )
    assert renamed.status_code in (200, 204), renamed.text
    _worker_applies(api, gid)
    # v2 pre-built name in a legacy workspace -> its legacy counterpart; manual untouched
    assert _role_bindings(api, gid) == [
        ("old", "legacy_admin", "ds"),
        ("sales", "viewer", "manual"),
    ]
    last = api.changes()[-1]
    assert last.kind == "config.rules.applied" and last.group_ids == [gid]

    # idempotent: nothing to do, no change row
    n = len(api.changes())
    _worker_applies(api, gid)
    with api.db.write() as s:
        assert apply_mapping_rules(s, api.org_id, actor="t").created == []
    assert len(api.changes()) == n

    # a rule-made binding cannot be deleted by hand
    rule_made = [b for b in api.ok("get", "/bindings?source=ds")]
    resp = api.delete(f"/bindings/roles/{rule_made[0]['id']}")
    assert resp.status_code == 409
    # deleting the rule removes what it made, never the manual binding
    api.ok("delete", "/mapping-rules/ds", status=200)
    assert _role_bindings(api, gid) == [("sales", "viewer", "manual")]
    assert api.ok("get", f"/bindings?group_id={gid}")[0]["id"] == manual["id"]


def test_missing_target_is_reported_then_bound_when_it_appears(api: Api) -> None:
    gid = api.group("ds-analytics-viewer")
    result = api.ok("post", "/mapping-rules", DS_RULE)
    problems = result["application"]["problems"]
    assert problems == [
        {
            "rule_id": "ds",
            "group_id": gid,
            "field": "workspace",
            "message": "no workspace matches 'analytics'",
        }
    ]
    assert api.ok("get", "/mapping-rules/problems")["problems"] == problems
    assert _role_bindings(api, gid) == []
    # the workspace appears: the rule now binds the group (same transaction as the create)
    api.ok("post", "/workspaces", {"id": "analytics"})
    assert _role_bindings(api, gid) == [("analytics", "viewer", "ds")]
    assert api.changes()[-1].kind == "config.workspace.created"
    assert gid in api.changes()[-1].group_ids


def test_external_id_rule_survives_renames_and_org_admin_and_space_rules(api: Api) -> None:
    api.ok("post", "/workspaces", {"id": "prod", "spaces_enabled": True})
    api.ok("post", "/spaces", {"id": "emea", "workspace_id": "prod", "name": "EMEA"})
    admins = api.group("Platform admins", external_id="okta-00g1")
    emea = api.group("EMEA marketing", external_id="okta-00g2")
    api.ok(
        "post",
        "/mapping-rules",
        {"id": "admins", "attribute": "externalId", "match": "exact", "pattern": "okta-00g1",
         "kind": "org_admin"},
    )  # fmt: skip
    api.ok(
        "post",
        "/mapping-rules",
        {"id": "emea-space", "attribute": "displayName", "match": "prefix", "pattern": "emea ",
         "ignore_case": True, "kind": "space", "space": "EMEA"},
    )  # fmt: skip
    kinds = {(b["kind"], b["group_id"], b["source"]) for b in api.ok("get", "/bindings")}
    assert kinds == {
        ("org_admin_binding", admins, "admins"),
        ("space_assignment", emea, "emea-space"),
    }
    # rename the admins group: externalId rule still matches -> nothing changes
    with api.db.write() as s:
        from models.db.tables import Group

        g = s.get(Group, admins)
        assert g is not None
        g.display_name, g.display_name_norm = "Renamed", "renamed"
    n = len(api.changes())
    _worker_applies(api, admins)
    assert len(api.changes()) == n


def test_rule_validation(api: Api) -> None:
    cases = [
        ({**DS_RULE, "pattern": "(a"}, "pattern"),
        ({**DS_RULE, "pattern": r"(a)\1"}, "pattern"),
        ({**DS_RULE, "pattern": "^(?P<team>x)$"}, "pattern"),
        ({**DS_RULE, "pattern": "^ds-(?P<workspace>x)$"}, "role"),
        ({**DS_RULE, "id": "manual"}, "id"),
        ({**DS_RULE, "match": "glob"}, "match"),
        ({**DS_RULE, "pattern": "a" * 1001}, "pattern"),
    ]
    for body, field in cases:
        resp = api.post("/mapping-rules", body)
        assert resp.status_code == 422, (body, resp.text)
        assert resp.json()["field"] == field, resp.json()
    assert api.changes() == []
