"""Issue 10: the cost of applying mapping rules is bounded (PostgreSQL).

The issue's scenario: ten valid RE2 rules such as ``(?:[^!]{0,10}){1,99}!z1`` and 300
groups with ~500-character names made ``POST /workspaces`` take 33 s and
``POST /mapping-rules/apply`` 40 s. The bounds asserted here are structural, never
wall time: a rule whose RE2 program is larger than ``MAX_PROGRAM_SIZE`` is refused, a
rule write evaluates that rule only, and a workspace, Space or role write evaluates
only the (rule, group) pairs whose result it can change.
"""

from __future__ import annotations

import random
import string
from dataclasses import replace

import pytest

from models.access.mapping_rules import MAX_PROGRAM_SIZE, compile_pattern
from models.db import config_store as store
from models.db.rule_application import apply_in_chunks, apply_mapping_rules, reapply_for_targets
from tests.integration.admin.conftest import Api

ISSUE_PATTERN = "(?:[^!]{0,10}){1,99}!z1"
# The same shape, shrunk to just under the limit: still a valid (and slow-ish) rule.
ALLOWED_PATTERN = "(?:[^!]{0,10}){1,5}!z"
GROUPS = 300

POSTGRESQL = pytest.mark.parametrize("database", ["postgresql"], indirect=True)


def _long_names(api: Api, n: int) -> list[str]:
    rnd = random.Random(10)
    return [
        api.group("".join(rnd.choice(string.ascii_lowercase) for _ in range(500))) for _ in range(n)
    ]


@POSTGRESQL
def test_rule_over_the_program_size_limit_is_refused_naming_pattern_and_limit(api: Api) -> None:
    api.ok("post", "/workspaces", {"id": "w0"})
    n = len(api.changes())
    body = {
        "id": "costly",
        "attribute": "displayName",
        "match": "regex",
        "pattern": ISSUE_PATTERN,
        "workspace": "w0",
        "role": "viewer",
    }
    resp = api.post("/mapping-rules", body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["field"] == "pattern"
    assert str(MAX_PROGRAM_SIZE) in resp.json()["detail"]
    assert api.get("/mapping-rules/costly").status_code == 404
    assert len(api.changes()) == n

    # a rule changed to such a pattern is refused too and keeps what it was
    api.ok("post", "/mapping-rules", {**body, "pattern": "team-x"})
    resp = api.put("/mapping-rules/costly", body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["field"] == "pattern"
    assert api.ok("get", "/mapping-rules/costly")["pattern"] == "team-x"


@POSTGRESQL
def test_rule_writes_evaluate_only_that_rule(api: Api) -> None:
    assert compile_pattern(ALLOWED_PATTERN + "0").programsize <= MAX_PROGRAM_SIZE
    api.ok("post", "/workspaces", {"id": "w0"})
    _long_names(api, GROUPS)
    ctx = store.WriteContext(org_id=api.org_id, actor="test")
    for i in range(10):
        spec = store.RuleSpec(
            id=f"r{i}",
            attribute="displayName",
            match="regex",
            pattern=f"{ALLOWED_PATTERN}{i}",
            workspace="w0",
            role="viewer",
        )
        with api.db.write() as s:
            _, app = store.create_rule(s, ctx, spec)
        # one rule against every group, not every rule against every group
        assert app.evaluations == GROUPS
    with api.db.write() as s:
        _, app = store.update_rule(s, ctx, replace(spec, pattern=f"{ALLOWED_PATTERN}x"))
    assert app.evaluations == GROUPS
    with api.db.write() as s:  # what a rule makes does not depend on its position
        _, app = store.update_rule(s, ctx, replace(spec, pattern=f"{ALLOWED_PATTERN}x", position=3))
    assert app.evaluations == 0
    with api.db.write() as s:
        app = store.delete_rule(s, ctx, "r9")
    assert app.evaluations == 0


@POSTGRESQL
def test_workspace_writes_evaluate_only_rules_and_groups_they_can_change(api: Api) -> None:
    api.ok("post", "/workspaces", {"id": "w0"})
    _long_names(api, GROUPS)
    for i in range(10):
        api.ok(
            "post",
            "/mapping-rules",
            {"id": f"r{i}", "attribute": "displayName", "match": "regex",
             "pattern": f"{ALLOWED_PATTERN}{i}", "workspace": "w0", "role": "viewer"},
        )  # fmt: skip
    captured = api.group("ds-analytics-viewer")
    api.ok(
        "post",
        "/mapping-rules",
        {"id": "ds", "attribute": "displayName", "match": "regex",
         "pattern": r"ds-(?P<workspace>[a-z0-9-]+)-(?P<role>admin|editor|viewer)"},
    )  # fmt: skip
    # A new workspace no rule names and no group name contains: nothing to evaluate.
    with api.db.write() as s:
        app = reapply_for_targets(s, api.org_id, "workspace", {"marketing"}, actor="t")
    assert app.evaluations == 0 and not app.changed
    # Named by the capturing rule through one group's name: that rule, that group.
    with api.db.write() as s:
        app = reapply_for_targets(s, api.org_id, "workspace", {"analytics"}, actor="t")
    assert app.evaluations == 1
    # Named as the ten rules' fixed target: those rules, every group.
    with api.db.write() as s:
        app = reapply_for_targets(s, api.org_id, "workspace", {"w0"}, actor="t")
    assert app.evaluations == 10 * (GROUPS + 1)
    # Through the API: the workspace appears and the group is bound in the same request.
    api.ok("post", "/workspaces", {"id": "analytics"})
    bindings = api.ok("get", f"/bindings?group_id={captured}")
    assert [(b["workspace_id"], b["role_id"], b["source"]) for b in bindings] == [
        ("analytics", "viewer", "ds")
    ]


def _full_apply_is_a_no_op(api: Api, step: str) -> None:
    """What a targeted re-application left is what every rule on every group makes,
    in one transaction and chunk by chunk (the worker's job) alike."""
    with api.db.sessions() as s:
        tx = s.begin()
        try:
            done = apply_mapping_rules(s, api.org_id, actor="t", record=False)
        finally:
            tx.rollback()
    assert (done.created, done.removed) == ([], []), step
    chunked = apply_in_chunks(api.db, api.org_id, actor="t", repair=False)
    assert (chunked.created, chunked.removed) == ([], []), step


def _rule_made(api: Api) -> list[tuple[str, str, str, str]]:
    return sorted(
        (
            b["group_id"],
            b.get("workspace_id") or "",
            b.get("role_id") or b.get("space_id") or "",
            b["source"],
        )
        for b in api.ok("get", "/bindings")
        if b["source"] != "manual"
    )


def test_targeted_re_application_equals_a_full_one(api: Api) -> None:
    groups = {
        name: api.group(name, external_id=ext)
        for name, ext in [
            ("ds-Marketing-viewer", None),
            ("ds-Sales-analyst", "ext-Sales"),
            ("ds-dup-editor", None),
            ("team-emea", "ext-dup"),
            ("unrelated", None),
        ]
    }
    rules = [
        {"id": "ds", "attribute": "displayName", "match": "regex",
         "pattern": r"ds-(?P<workspace>[A-Za-z0-9]+)-(?P<role>[a-z]+)"},
        {"id": "ext", "attribute": "externalId", "match": "regex",
         "pattern": r"(?i)EXT-(?P<workspace>.+)", "role": "Analyst"},
        {"id": "team", "attribute": "displayName", "match": "prefix", "pattern": "team-",
         "workspace": "Marketing", "role": "viewer"},
        {"id": "eu", "attribute": "displayName", "match": "prefix", "pattern": "team-",
         "kind": "space", "space": "EU"},
        {"id": "sp", "attribute": "displayName", "match": "regex",
         "pattern": r"ds-(?P<space>[A-Za-z]+)-.*", "kind": "space"},
    ]  # fmt: skip
    for rule in rules:
        api.ok("post", "/mapping-rules", rule)
    role: dict[str, object] = {"id": "an", "name": "ANALYST", "workspace_grants": ["access_agents"]}
    steps: list[tuple[str, str, str, dict[str, object] | None]] = [
        ("create workspace by name", "post", "/workspaces", {"id": "mkt", "name": "Marketing"}),
        ("create workspace by id", "post", "/workspaces", {"id": "Sales", "name": "s"}),
        ("custom role by name", "post", "/roles", role),
        ("ambiguous name 1", "post", "/workspaces", {"id": "d1", "name": "dup"}),
        ("ambiguous name 2", "post", "/workspaces", {"id": "d2", "name": "dup"}),
        ("ambiguity resolved", "delete", "/workspaces/d1", None),
        ("legacy model", "patch", "/workspaces/d2", {"permissions_model": "legacy"}),
        ("rename away", "patch", "/workspaces/mkt", {"name": "Mkt"}),
        ("rename back", "patch", "/workspaces/mkt", {"name": "Marketing"}),
        ("becomes an environment", "patch", "/workspaces/Sales", {"parent_workspace_id": "mkt"}),
        ("detached again", "patch", "/workspaces/Sales", {"parent_workspace_id": None}),
        ("space by name", "post", "/spaces", {"id": "s-eu", "workspace_id": "mkt", "name": "EU"}),
        ("space by capture", "post", "/spaces", {"id": "s-ds", "workspace_id": "mkt",
                                                  "name": "Marketing"}),
        ("space renamed", "patch", "/workspaces/mkt/spaces/s-eu", {"name": "Europe"}),
        ("space deleted", "delete", "/workspaces/mkt/spaces/s-ds", None),
        ("role renamed", "put", "/roles/an", {**role, "name": "Other"}),
        ("role renamed back", "put", "/roles/an", role),
        ("role deleted", "delete", "/roles/an", None),
        ("workspace deleted", "delete", "/workspaces/d2", None),
    ]  # fmt: skip
    seen: set[tuple[str, str, str, str]] = set()
    for step, method, path, body in steps:
        resp = getattr(api, method)(path) if body is None else getattr(api, method)(path, body)
        assert resp.status_code in (200, 201, 204), (step, resp.text)
        seen.update(_rule_made(api))
        _full_apply_is_a_no_op(api, step)
    # the sequence exercised every rule on the groups it names
    assert {source for *_, source in seen} == {"ds", "ext", "team", "eu", "sp"}
    assert groups["unrelated"] not in {g for g, *_ in seen}
