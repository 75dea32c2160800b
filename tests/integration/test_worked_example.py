"""docs/worked-example.md is runnable as written and shows what idsync answers.

The test runs the document's section-0 commands verbatim through bash from the project
root (only the port is changed to a free one), on a fresh SQLite file and a fresh
PostgreSQL database, and compares every `<!-- output: KEY -->` block of the document with
the block `# KEY: …` that examples/worked_example.py printed. Ids are compared by name
(the document's and the run's `ids` blocks say which id is whose); other UUIDs and
timestamps are masked. With IDSYNC_UPDATE_DOCS=1 the SQLite run rewrites the document's
blocks from its own output instead of failing.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from idsync.app import create_app
from models.db.admin_keys import create_admin_key
from models.db.database import Database
from models.db.tokens import create_scim_token, get_or_create_org
from models.settings import Settings
from tests.conftest import PG_ADMIN_URL
from tests.support.live_server import free_port, live_server
from tests.support.processes import captured
from tests.support.throwaway import empty_pg_database

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "worked-example.md"
RUN_BLOCK = re.compile(r"<!-- worked-example: run -->\n```sh\n(?P<body>.*?)```", re.S)
OUTPUT_BLOCK = re.compile(r"(<!-- output: (?P<key>[\w-]+) -->\n```text\n)(?P<body>.*?)(```)", re.S)
HEADER = re.compile(r"^# (?P<key>[\w-]+): .*$", re.M)
UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
TIMESTAMP = re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)")
DOC_PORT = "8000"


def script_blocks(stdout: str) -> dict[str, str]:
    """`# key: title` headers and the lines under each (what came before is dropped)."""
    headers = list(HEADER.finditer(stdout))
    blocks = {}
    for i, header in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(stdout)
        blocks[header["key"]] = stdout[header.end() : end].strip("\n") + "\n"
    return blocks


def doc_blocks(doc: str) -> dict[str, str]:
    return {match["key"]: match["body"] for match in OUTPUT_BLOCK.finditer(doc)}


def names_of(ids_block: str) -> dict[str, str]:
    """id -> "<user pat>" / "<group EU Analysts>" from an `ids` block."""
    names = {}
    for line in ids_block.splitlines():
        kind, rest = line.split(None, 1)
        name, id_ = rest.rsplit(None, 1)
        names[id_] = f"<{kind} {name.strip()}>"
    return names


def normalised(block: str, names: dict[str, str]) -> str:
    block = UUID.sub(lambda m: names.get(m.group(0), "<uuid>"), block)
    return TIMESTAMP.sub("<time>", block)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: the document's commands migrate it themselves."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'idsync.db'}"
        return
    with empty_pg_database(PG_ADMIN_URL, "idsync_example") as url:
        yield url


def _env(database_url: str, data_dir: Path) -> dict[str, str]:
    """The user's shell: no Redis (the example needs the API only), this database."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "REDIS_URL", "CACHE_REDIS_URL", "IDSYNC_"))
    }
    env["DATABASE_URL"] = database_url
    env["IDSYNC_DATA_DIR"] = str(data_dir)
    return env


def _run_section_0(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    match = RUN_BLOCK.search(DOC.read_text())
    assert match, "docs/worked-example.md lost its `worked-example: run` block"
    snippet = match["body"]
    assert f"127.0.0.1:{DOC_PORT}" in snippet and f"--port {DOC_PORT}" in snippet
    port = str(free_port())
    snippet = snippet.replace(f"127.0.0.1:{DOC_PORT}", f"127.0.0.1:{port}").replace(
        f"--port {DOC_PORT}", f"--port {port}"
    )
    proc = subprocess.Popen(
        ["bash", "-c", snippet],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the server it starts goes with it, whatever happens
    )
    try:
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def _compare_with_doc(stdout: str, stderr: str, update: bool) -> None:
    run = script_blocks(stdout)
    assert "ids" in run and "permissions" in run, f"the example did not finish:\n{stderr[-4000:]}"
    doc = DOC.read_text()
    if update:
        doc = OUTPUT_BLOCK.sub(lambda m: m.group(1) + run[m["key"]] + m.group(4), doc)
        DOC.write_text(doc)
    shown = doc_blocks(doc)
    assert sorted(shown) == sorted(run), "the document and the script show different blocks"
    doc_names, run_names = names_of(shown["ids"]), names_of(run["ids"])
    assert sorted(doc_names.values()) == sorted(run_names.values())
    for key, body in run.items():
        assert normalised(shown[key], doc_names) == normalised(body, run_names), key


def test_the_worked_example_runs_as_written(database_url: str, tmp_path: Path) -> None:
    env = _env(database_url, tmp_path / "data")
    result = _run_section_0(env)
    assert result.returncode == 0, result.stderr[-4000:]
    update = os.environ.get("IDSYNC_UPDATE_DOCS") == "1" and database_url.startswith("sqlite")
    _compare_with_doc(result.stdout, result.stderr, update)

    # Run again (as the document says it may be): same users and groups, no changes.
    database = Database(database_url)
    try:
        with database.write() as session:
            org = get_or_create_org(session, "acme")
            scim_token = create_scim_token(session, org, "again")
            admin_key = create_admin_key(session, org, "again")
        settings = Settings(IDSYNC_DATA_DIR=tmp_path / "data", DATABASE_URL=database_url)
        app = create_app(settings, db=database)
        with live_server(app) as base:
            again = captured(
                [
                    sys.executable,
                    "examples/worked_example.py",
                    *("--url", base, "--scim-token", scim_token, "--admin-key", admin_key),
                ],
                cwd=ROOT,
                env=env,
                timeout=240,
            )
    finally:
        database.dispose()
    assert again.returncode == 0, again.stderr[-4000:]
    second = script_blocks(again.stdout)
    assert second["ids"] == script_blocks(result.stdout)["ids"]
    assert second["dry-run"] == second["apply"] == second["apply-again"] == "no changes\n"
