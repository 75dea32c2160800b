"""Docs are part of the product: every setting and CLI command is documented."""

from __future__ import annotations

import re
from pathlib import Path

import click

from idsync.cli import main
from models.settings import Settings

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
        ctx = click.Context(group)
        for name in group.list_commands(ctx):  # the main group loads its commands lazily
            command = group.get_command(ctx, name)
            assert command is not None, name
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


# Shell snippets that must run as written from the project root, without an activated
# venv: `idsync`/`python` through .venv/bin, and every variable defined in the snippet.
RUNNABLE_DOCS = ["docs/worked-example.md"]
SH_BLOCK = re.compile(r"```(?:sh|bash|shell)\n(.*?)```", re.S)
VARIABLE_USE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
VARIABLE_SET = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=", re.M)
BARE_COMMAND = re.compile(r"(?:^|[;&|(]\s*|\$\(\s*)(idsync|python3?|pip|pytest)\b", re.M)
SHELL_VARIABLES = {"!", "?", "HOME", "PATH", "PWD"}


def test_runnable_doc_snippets_define_their_variables_and_use_the_venv() -> None:
    problems = []
    for name in RUNNABLE_DOCS:
        for snippet in SH_BLOCK.findall((ROOT / name).read_text()):
            defined = set(VARIABLE_SET.findall(snippet)) | SHELL_VARIABLES
            code = "\n".join(line.split(" #", 1)[0] for line in snippet.splitlines())
            undefined = sorted(set(VARIABLE_USE.findall(code)) - defined)
            if undefined:
                problems.append(f"{name}: {undefined} not defined in\n{snippet}")
            bare = BARE_COMMAND.findall(code)
            if bare:
                problems.append(f"{name}: {bare} without .venv/bin/ in\n{snippet}")
    assert problems == [], "\n".join(problems)
