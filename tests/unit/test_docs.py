"""Docs are part of the product: every setting and CLI command is documented."""

from __future__ import annotations

import re
from pathlib import Path

import click

from idsync.cli import main
from idsync.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    missing = [
        str(field.validation_alias)
        for field in Settings.model_fields.values()
        if f"`{field.validation_alias}`" not in README
    ]
    assert missing == [], f"README configuration reference lacks {missing}"


def test_every_cli_command_is_in_the_readme() -> None:
    def walk(group: click.Group, prefix: str) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                found += walk(command, f"{prefix} {name}")
            else:
                found.append((prefix, name))
        return found

    undocumented = [
        f"{prefix} {name}"
        for prefix, name in walk(main, "idsync")
        # `idsync token create …`, or a group row such as `idsync cache status|rebuild`
        if not re.search(rf"`{re.escape(prefix)} [^`]*\b{re.escape(name)}\b", README)
    ]
    assert undocumented == [], f"README lacks CLI commands {undocumented}"
