"""A custom role's subset limit naming a category its workspace does not have
(``regoin``) is refused where it can be (binding it, changing a bound role) and
reported as a configuration problem where it cannot (categories changed later, a
rule-made binding), never accepted to deny silently (issue 11, item 6)."""

from __future__ import annotations

from typing import Any

import pytest

from idsync.declarative import apply_file, parse_config
from models.db.config_errors import ConfigError
from models.db.tables import Organization
from tests.integration.admin.conftest import Api

CATEGORIES = {"categories": [{"name": "region", "required": True}, {"name": "consent"}]}


def _role(limit: dict[str, list[str]], resource_id: str = "customers") -> dict[str, Any]:
    return {
        "id": "eu",
        "name": "EU",
        "resource_grants": [
            {"scope": "source", "resource_id": "*", "grants": ["view_data"]},
            {
                "scope": "parent_model",
                "resource_id": resource_id,
                "grants": ["view_parent_model_data"],
                "subset_limit": limit,
            },
        ],
    }


def _setup(api: Api) -> str:
    api.ok("post", "/workspaces", {"id": "prod"})
    api.ok("put", "/workspaces/prod/parent-models/customers/subset-categories", CATEGORIES)
    return api.group("Analysts")


def test_binding_a_role_with_an_unknown_category_is_refused(api: Api) -> None:
    g = _setup(api)
    api.ok("post", "/roles", _role({"regoin": ["EU"]}))  # not bound anywhere yet
    n = len(api.changes())
    resp = api.post("/bindings/roles", {"group_id": g, "workspace_id": "prod", "role_id": "eu"})
    assert resp.status_code == 422 and resp.json()["field"] == "role_id"
    detail = resp.json()["detail"]
    assert "resource_grants[1].subset_limit.regoin" in detail
    assert "'regoin'" in detail and "consent, region" in detail and "'prod'" in detail
    assert len(api.changes()) == n and api.ok("get", "/bindings") == []
    # a "*" limit may name any parent model's category; an unknown one is refused too
    api.ok("put", "/roles/eu", _role({"consent": ["yes"]}, "*"))
    api.ok("post", "/bindings/roles", {"group_id": g, "workspace_id": "prod", "role_id": "eu"})


def test_changing_a_bound_role_to_an_unknown_category_is_refused(api: Api) -> None:
    g = _setup(api)
    api.ok("post", "/roles", _role({"region": ["EU"]}))
    api.ok("post", "/bindings/roles", {"group_id": g, "workspace_id": "prod", "role_id": "eu"})
    n = len(api.changes())
    for limit, rid in (({"regoin": ["EU"]}, "customers"), ({"regoin": ["EU"]}, "*")):
        resp = api.put("/roles/eu", _role(limit, rid))
        assert resp.status_code == 422, resp.text
        assert resp.json()["field"] == "resource_grants[1].subset_limit.regoin"
        assert "consent, region" in resp.json()["detail"]
    other = api.put("/roles/eu", _role({"region": ["EU"]}, "orders"))  # orders has none
    assert other.status_code == 422 and "none" in other.json()["detail"]
    assert len(api.changes()) == n
    assert api.ok("get", "/roles/eu")["resource_grants"][1]["subset_limit"] == {"region": ["EU"]}
    # changing a binding's role in place checks the same
    api.ok("post", "/roles", {**_role({"regoin": ["EU"]}), "id": "typo"})
    (binding,) = api.ok("get", "/bindings")
    resp = api.put(f"/bindings/roles/{binding['id']}", {"role_id": "typo"})
    assert resp.status_code == 422 and "regoin" in resp.json()["detail"]


def test_what_cannot_be_refused_is_reported(api: Api) -> None:
    g = _setup(api)
    api.ok("post", "/roles", _role({"region": ["EU"]}))
    api.ok("post", "/bindings/roles", {"group_id": g, "workspace_id": "prod", "role_id": "eu"})
    assert api.ok("get", "/reports/config-problems") == []
    # the category is renamed later: not refused (the file or admin may fix the role next)
    renamed = {"categories": [{"name": "area", "required": True}]}
    api.ok("put", "/workspaces/prod/parent-models/customers/subset-categories", renamed)
    assert api.ok("get", "/reports/config-problems") == [
        {
            "kind": "role",
            "id": "eu",
            "field": "resource_grants[1].subset_limit.region",
            "message": "no subset category 'region' on parent model 'customers' in workspace"
            " 'prod' (categories there: area)",
        }
    ]
    # a mapping rule binding the role where the category is missing: reported as well
    api.ok("post", "/workspaces", {"id": "stage"})
    api.group("stage-eu")
    rule = {
        "id": "r",
        "attribute": "displayName",
        "match": "exact",
        "pattern": "stage-eu",
        "workspace": "stage",
        "role": "eu",
    }
    api.ok("post", "/mapping-rules", rule)
    fields = {
        (p["id"], p["message"].split(" in workspace ")[1])
        for p in api.ok("get", "/reports/config-problems")
    }
    assert fields == {
        ("eu", "'prod' (categories there: area)"),
        ("eu", "'stage' (categories there: none)"),
    }


def test_declarative_apply_reports_the_problem(api: Api) -> None:
    api.group("Analysts")
    with api.db.read() as s:
        org = s.get(Organization, api.org_id)
        assert org is not None
        name = org.name
    text = """
organization: ORG
workspaces:
  - id: prod
    subset_categories: {customers: [{name: region, required: true}]}
roles:
  - id: eu
    name: EU
    resource_grants:
      - {scope: parent_model, resource_id: customers, grants: [view_parent_model_data],
         subset_limit: {region: [EU]}}
bindings:
  roles:
    - {group: Analysts, workspace: prod, role: eu}
""".replace("ORG", name)
    assert apply_file(api.db, None, parse_config(text), dry_run=False, actor="t").problems == []
    typo = text.replace("subset_limit: {region: [EU]}", "subset_limit: {regoin: [EU]}")
    with pytest.raises(ConfigError) as refused:  # the bound role's change, naming the field
        apply_file(api.db, None, parse_config(typo), dry_run=False, actor="t")
    assert refused.value.field == "roles[0].resource_grants[0].subset_limit.regoin"
    gone = text.replace("{customers: [{name: region, required: true}]}", "{}")
    result = apply_file(api.db, None, parse_config(gone), dry_run=False, actor="t")
    assert result.problems == [
        "role eu: resource_grants[0].subset_limit.region: no subset category 'region' on parent"
        " model 'customers' in workspace 'prod' (categories there: none)"
    ]
    # categories and a bound role limited by them, added by one file: categories go first
    both = text.replace(
        "{name: region, required: true}]", "{name: region, required: true}, {name: consent}]"
    ).replace("subset_limit: {region: [EU]}", "subset_limit: {region: [EU], consent: [opt-in]}")
    assert apply_file(api.db, None, parse_config(both), dry_run=False, actor="t").problems == []
