"""`idsync apply FILE`: idempotent, dry-run writes nothing, atomic on errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from idsync.declarative import apply_file, load_config_file, parse_config
from models.db.config_errors import ConfigError
from models.db.config_tables import ConfigWorkspace, RoleBindingRow
from models.db.tables import Change
from tests.integration.admin.conftest import Api, Two

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "acme.yaml"
GROUPS = [
    ("Platform admins", "okta-platform-admins"),
    ("Marketing Editors", None),
    ("EU Analysts", None),
    ("Finance Drafters", None),
    ("Finance Approvers", None),
    ("Ops Oncall", None),
    ("ds-ops-viewer", None),
]


def _groups(api: Api) -> dict[str, str]:
    return {name: api.group(name, external_id=ext) for name, ext in GROUPS}


def _counts(api: Api) -> tuple[int, int, int]:
    with api.db.read() as s:
        return (
            int(s.scalar(select(func.count()).select_from(Change)) or 0),
            int(s.scalar(select(func.count()).select_from(ConfigWorkspace)) or 0),
            int(s.scalar(select(func.count()).select_from(RoleBindingRow)) or 0),
        )


def test_apply_example_twice_second_is_noop(api: Api) -> None:
    groups = _groups(api)
    config = load_config_file(EXAMPLE)
    dry = apply_file(api.db, None, config, dry_run=True, actor="test")
    assert "+ workspace marketing (v2)" in dry.diff
    assert _counts(api) == (0, 0, 0)  # dry run wrote nothing

    first = apply_file(api.db, None, config, dry_run=False, actor="test")
    assert first.diff == dry.diff
    assert first.change_rows > 0
    assert any(line.startswith("+ rule-made workspace_role") for line in first.diff)
    bindings = api.ok("get", f"/bindings?group_id={groups['ds-ops-viewer']}")
    assert [(b["workspace_id"], b["role_id"], b["source"]) for b in bindings] == [
        ("ops", "legacy_workspace_viewer", "ds-groups")
    ]
    envs = {w["id"]: w["parent_workspace_id"] for w in api.ok("get", "/workspaces")}
    assert envs["marketing-dev"] == "marketing"

    before = _counts(api)
    second = apply_file(api.db, None, config, dry_run=False, actor="test")
    assert second.diff == [] and second.change_rows == 0
    assert _counts(api) == before


def test_apply_updates_and_prunes_authoritative_sections(api: Api) -> None:
    _groups(api)
    apply_file(api.db, None, load_config_file(EXAMPLE), dry_run=False, actor="test")
    smaller = parse_config(
        """
organization: acme
workspaces:
  - {id: marketing, name: Marketing, spaces_enabled: true, approvals_required: true}
bindings:
  roles:
    - {group: Marketing Editors, workspace: marketing, role: viewer}
"""
    )
    result = apply_file(api.db, "acme", smaller, dry_run=False, actor="test")
    assert "~ workspace marketing: approvals_required: False -> True" in result.diff
    assert "- workspace marketing-dev" in result.diff
    assert "- workspace ops" in result.diff
    # the group's binding changed role in place (not a delete and a create)
    assert "~ binding Marketing Editors -> marketing: editor -> viewer" in result.diff
    assert [w["id"] for w in api.ok("get", "/workspaces")] == ["marketing"]
    # spaces were not listed for marketing: left alone; roles section absent: left alone
    assert {s["id"] for s in api.ok("get", "/spaces")} == {"emea", "americas"}
    assert "eu-analyst" in {r["id"] for r in api.ok("get", "/roles?builtin=false")}


def test_apply_error_writes_nothing_and_names_the_field(two: Two) -> None:
    api = two.a
    _groups(api)
    two.b.group("Only in globex")
    before = _counts(api)
    bad = parse_config(
        """
workspaces: [{id: prod}]
bindings:
  roles:
    - {group: Marketing Editors, workspace: prod, role: editor}
    - {group: Only in globex, workspace: prod, role: editor}
"""
    )
    with pytest.raises(ConfigError) as info:
        apply_file(api.db, "acme", bad, dry_run=False, actor="test")
    assert info.value.field == "bindings.roles[1].group"
    assert _counts(api) == before
    bad_role = parse_config("roles: [{id: r, name: R, workspace_grants: [fly]}]")
    with pytest.raises(ConfigError) as info:
        apply_file(api.db, "acme", bad_role, dry_run=False, actor="test")
    assert info.value.field == "roles[0].workspace_grants[0]"
    wrong_org = parse_config("organization: globex\nworkspaces: []")
    with pytest.raises(ConfigError):
        apply_file(api.db, "acme", wrong_org, dry_run=False, actor="test")
    assert _counts(api) == before


def test_cli_apply_and_admin_key(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from idsync import cli
    from models.settings import get_settings

    _groups(api)
    monkeypatch.setenv("DATABASE_URL", api.db.url)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        dry = runner.invoke(cli.main, ["apply", str(EXAMPLE), "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert "+ workspace marketing (v2)" in dry.output
        assert "nothing written" in dry.output
        assert _counts(api)[1] == 0
        real = runner.invoke(cli.main, ["apply", str(EXAMPLE)])
        assert real.exit_code == 0, real.output
        # the cost of the run, beside the problems on stderr (stdout stays the diff)
        cost = re.search(r"^mapping rules: (\d+) regular expressions evaluated$", real.stderr, re.M)
        assert cost is not None and int(cost[1]) > 0, real.stderr
        assert "regular expressions" not in real.stdout
        again = runner.invoke(cli.main, ["apply", str(EXAMPLE)])
        assert again.exit_code == 0 and "no changes" in again.output
        created = runner.invoke(cli.main, ["admin-key", "create", "--org", "acme"])
        assert created.exit_code == 0, created.output
        key = created.output.strip().splitlines()[-1]
        assert key.startswith("idsync_admin_")
        resp = api.client.get("/api/v1/organization", headers={"Authorization": f"Bearer {key}"})
        assert resp.json()["name"] == "acme"
        listed = runner.invoke(cli.main, ["admin-key", "list", "--org", "acme"])
        assert key[:20] in listed.output
        key_id = listed.output.strip().splitlines()[-1].split("\t")[0]
        revoked = runner.invoke(cli.main, ["admin-key", "revoke", key_id])
        assert revoked.exit_code == 0, revoked.output
        gone = api.client.get("/api/v1/organization", headers={"Authorization": f"Bearer {key}"})
        assert gone.status_code == 401
    finally:
        get_settings.cache_clear()


def test_apply_deletes_a_chain_of_environments(api: Api) -> None:
    """a → b → c (b an environment of a, c of b): `workspaces: []` deletes all three,
    deepest first (deleting b before c was a ConflictError)."""
    chain = parse_config(
        """
organization: acme
workspaces:
  - {id: a, name: A}
  - {id: b, name: B, parent_workspace_id: a}
  - {id: c, name: C, parent_workspace_id: b}
"""
    )
    apply_file(api.db, "acme", chain, dry_run=False, actor="test")
    assert {w["id"] for w in api.ok("get", "/workspaces")} == {"a", "b", "c"}

    result = apply_file(
        api.db,
        "acme",
        parse_config("organization: acme\nworkspaces: []\n"),
        dry_run=False,
        actor="test",
    )
    assert result.diff == ["- workspace c", "- workspace b", "- workspace a"]
    assert api.ok("get", "/workspaces") == []


def test_apply_changes_a_bindings_role_in_place(api: Api) -> None:
    groups = _groups(api)
    apply_file(api.db, None, load_config_file(EXAMPLE), dry_run=False, actor="test")
    before = api.ok(
        "get", f"/bindings?group_id={groups['Marketing Editors']}&workspace_id=marketing"
    )
    (editor,) = [b for b in before if b["kind"] == "role_binding"]
    text = EXAMPLE.read_text().replace(
        "{group: Marketing Editors, workspace: marketing, role: editor}",
        "{group: Marketing Editors, workspace: marketing, role: draft_editor}",
    )
    assert "role: draft_editor}" in text
    n = len(api.changes())
    result = apply_file(api.db, None, parse_config(text), dry_run=False, actor="test")
    assert result.diff == ["~ binding Marketing Editors -> marketing: editor -> draft_editor"]
    changes = api.changes()[n:]
    assert [(c.kind, c.resource_id, c.group_ids) for c in changes] == [
        ("config.binding.updated", editor["id"], [groups["Marketing Editors"]])
    ]
    after = api.ok(
        "get", f"/bindings?group_id={groups['Marketing Editors']}&workspace_id=marketing"
    )
    assert [(b["id"], b["role_id"]) for b in after if b["kind"] == "role_binding"] == [
        (editor["id"], "draft_editor")
    ]
