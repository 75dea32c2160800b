"""Declarative file parsing: shape errors name the field; the example file parses."""

from __future__ import annotations

from pathlib import Path

import pytest

from idsync.declarative import load_config_file, parse_config
from models.db.config_errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]


def test_example_file_parses() -> None:
    config = load_config_file(ROOT / "examples" / "acme.yaml")
    assert config.organization == "acme"
    assert config.workspaces is not None
    assert [w.id for w in config.workspaces] == ["marketing", "marketing-dev", "finance", "ops"]
    assert config.bindings is not None and config.bindings.roles is not None
    assert config.mapping_rules is not None and config.mapping_rules[0].id == "ds-groups"


def test_json_is_accepted() -> None:
    config = parse_config('{"workspaces": [{"id": "prod"}]}', source="x.json")
    assert config.workspaces is not None and config.workspaces[0].id == "prod"
    assert config.roles is None  # absent sections are left alone


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("workspaces: [{id: prod, colour: red}]", "workspaces[0].colour"),
        ("workspaces: [{name: x}]", "workspaces[0].id"),
        ("roles: [{id: r, name: R, model: v3}]", "roles[0].model"),
        (
            "mapping_rules: [{attribute: displayName, match: exact, pattern: x}]",
            "mapping_rules[0].id",
        ),
        ("bindings: {roles: [{group: G, workspace: w}]}", "bindings.roles[0].role"),
        ("surprise: 1", "surprise"),
    ],
)
def test_shape_errors_name_the_field(text: str, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert info.value.field == field


def test_not_a_mapping() -> None:
    with pytest.raises(ConfigError):
        parse_config("- a\n- b\n")
    with pytest.raises(ConfigError):
        parse_config("a: [unclosed")
