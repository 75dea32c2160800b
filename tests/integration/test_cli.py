"""The operator CLI, run as a real subprocess against a fresh database."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from idsync.app import create_app
from models.db.database import Database
from models.settings import Settings
from tests.conftest import PG_ADMIN_URL, REDIS_TEST_URL
from tests.support.throwaway import empty_pg_database


def _idsync(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "idsync.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def cli_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "IDSYNC_"))}
    env["IDSYNC_DATA_DIR"] = str(tmp_path / "data")
    if request.param == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.db'}"
    else:
        env["DATABASE_URL"] = request.getfixturevalue("pg_empty_url")
    return env


@pytest.fixture
def pg_empty_url() -> Iterator[str]:
    """A brand-new, empty PostgreSQL database (the CLI must migrate it itself)."""
    with empty_pg_database(PG_ADMIN_URL, "idsync_cli") as url:
        yield url


def test_token_lifecycle_and_audit(cli_env: dict[str, str]) -> None:
    upgraded = _idsync(cli_env, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    again = _idsync(cli_env, "db", "upgrade")
    assert again.returncode == 0, again.stderr

    created = _idsync(cli_env, "token", "create", "--org", "acme", "--description", "Okta")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("idsync_scim_")

    listed = _idsync(cli_env, "token", "list", "--org", "acme")
    assert listed.returncode == 0, listed.stderr
    assert token not in listed.stdout  # the secret is never shown again
    assert token[:20] in listed.stdout and "Okta" in listed.stdout

    db = Database(cli_env["DATABASE_URL"])
    try:
        app = create_app(Settings(IDSYNC_SCIM_TOKEN_CACHE_S=0), db=db)  # revoke: at once
        with TestClient(app) as client:
            auth = {"Authorization": f"Bearer {token}"}
            made = client.post(
                "/scim/v2/Users",
                json={"userName": "cli@example.com"},
                headers={**auth, "X-Request-Id": "req-cli-1"},
            )
            assert made.status_code == 201, made.text

            audit = _idsync(cli_env, "audit", "--org", "acme", "--json")
            assert audit.returncode == 0, audit.stderr
            entries = [json.loads(line) for line in audit.stdout.splitlines()]
            assert [e["kind"] for e in entries] == ["user.created"]
            assert entries[0]["actor"].startswith("scim-token:")
            assert entries[0]["request_id"] == "req-cli-1"

            token_id = listed.stdout.splitlines()[1].split("\t")[0]
            revoked = _idsync(cli_env, "token", "revoke", token_id)
            assert revoked.returncode == 0, revoked.stderr
            assert client.get("/scim/v2/Users", headers=auth).status_code == 401
            assert _idsync(cli_env, "token", "revoke", token_id).returncode != 0
    finally:
        db.dispose()


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """An operator mistake ends the command with exit 1 and exactly one line."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def _plain_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "IDSYNC_", "REDIS_URL", "CACHE_REDIS_URL"))
    }
    env["IDSYNC_DATA_DIR"] = str(tmp_path / "nowhere")
    return env


def test_a_command_before_migrations_says_so_and_creates_nothing(tmp_path: Path) -> None:
    env = _plain_env(tmp_path)
    line = _one_error_line(_idsync(env, "token", "list"))
    db_file = tmp_path / "nowhere" / "idsync.db"
    assert line == (
        f"Error: no idsync database at {db_file}: run `idsync db upgrade` "
        f"(database sqlite:///{db_file})"
    )
    assert not (tmp_path / "nowhere").exists()  # no empty SQLite file, no data dir


def test_an_empty_postgresql_database_says_run_db_upgrade(
    pg_empty_url: str, tmp_path: Path
) -> None:
    env = {**_plain_env(tmp_path), "DATABASE_URL": pg_empty_url}
    line = _one_error_line(_idsync(env, "admin-key", "list"))
    assert line.startswith("Error: the database has no idsync schema: run `idsync db upgrade`")


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "IDSYNC_SCIM_MAX_RESULTS",
            "abc",
            "Error: IDSYNC_SCIM_MAX_RESULTS: Input should be a valid integer, unable to parse "
            "string as an integer (got 'abc')",
        ),
        (
            "DATABASE_URL",
            "mysql://root:hunter2@db/idsync",
            "Error: DATABASE_URL: unsupported scheme 'mysql': use postgresql://user@host:port/db "
            "or sqlite:///path (got 'mysql://root:***@db/idsync')",
        ),
        (
            "IDSYNC_WORKER_CONCURRENCY",
            "0",
            "Error: IDSYNC_WORKER_CONCURRENCY: Input should be greater than or equal to 1 "
            "(got '0')",
        ),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_variable(
    tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    env = {**_plain_env(tmp_path), variable: value}
    assert _one_error_line(_idsync(env, "token", "list")) == expected


def test_an_unreachable_postgresql_is_one_line_with_the_password_masked(tmp_path: Path) -> None:
    env = {**_plain_env(tmp_path), "DATABASE_URL": "postgresql://idsync:hunter2@127.0.0.1:1/x"}
    result = _idsync(env, "token", "list")
    line = _one_error_line(result)
    assert line.startswith("Error: cannot use PostgreSQL at postgresql://idsync:***@127.0.0.1:1/x:")
    assert "Connection refused" in line
    assert "hunter2" not in result.stderr + result.stdout


def test_an_unreachable_redis_is_one_line(cli_env: dict[str, str]) -> None:
    assert _idsync(cli_env, "db", "upgrade").returncode == 0
    assert _idsync(cli_env, "token", "create", "--org", "acme").returncode == 0
    env = {**cli_env, "REDIS_URL": "redis://:hunter2@127.0.0.1:1/0"}
    result = _idsync(env, "cache", "status")
    line = _one_error_line(result)
    assert line.startswith("Error: cannot reach Redis at redis://:***@127.0.0.1:1/0: ")
    assert "hunter2" not in result.stderr + result.stdout


def test_version(tmp_path: Path) -> None:
    result = _idsync(_plain_env(tmp_path), "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == "idsync, version 0.1.0"


def test_status_names_each_part_and_exits_1_when_not_ready(cli_env: dict[str, str]) -> None:
    assert _idsync(cli_env, "db", "upgrade").returncode == 0
    env = {**cli_env, "REDIS_URL": "redis://127.0.0.1:1/0"}
    result = _idsync(env, "status")
    assert result.returncode == 1
    parts = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[:-1]}
    assert parts == {
        "database": "ok",
        "broker": "fail",
        "cache": "fail",
        "worker": "fail",
        "cache_built": "ok",
    }
    assert result.stdout.splitlines()[-1] == "NOT READY"
    as_json = json.loads(_idsync(env, "status", "--json").stdout)
    assert as_json["status"] == "unavailable"
    assert "Connection refused" in as_json["parts"]["broker"]["reason"]


def test_apply_names_the_file_once(cli_env: dict[str, str], tmp_path: Path) -> None:
    assert _idsync(cli_env, "db", "upgrade").returncode == 0
    bad = tmp_path / "acme.yaml"
    bad.write_text("organization: acme\nworkspaces:\n  - id: a\n - id: b\n")
    line = _one_error_line(_idsync(cli_env, "apply", str(bad)))
    assert line.count(str(bad)) == 1, line
    assert line.startswith(f"Error: {bad}: not valid YAML/JSON: ")
    assert "(line 4, column 2)" in line


def test_cache_status_times_are_iso_8601(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "REDIS_URL": REDIS_TEST_URL}
    assert _idsync(env, "db", "upgrade").returncode == 0
    assert _idsync(env, "token", "create", "--org", "acme").returncode == 0
    assert _idsync(env, "cache", "rebuild", "--org", "acme").returncode == 0
    result = _idsync(env, "cache", "status", "--org", "acme")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    iso = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")
    times = [status["built_at"]] + [
        status["rebuild"][k] for k in ("started_at", "heartbeat", "finished_at")
    ]
    assert all(iso.match(t) for t in times), times


@pytest.mark.parametrize("command", [["worker"], ["beat"], ["serve", "--port", "0"]])
def test_services_refuse_an_unmigrated_database_in_one_line(
    tmp_path: Path, command: list[str]
) -> None:
    env = {**_plain_env(tmp_path), "REDIS_URL": REDIS_TEST_URL}
    line = _one_error_line(_idsync(env, *command))
    assert line.startswith("Error: no idsync database at ")
    assert line.endswith(")") and "run `idsync db upgrade`" in line


def test_a_cluster_broker_is_refused_in_one_line(tmp_path: Path) -> None:
    env = {**_plain_env(tmp_path), "REDIS_URL": "redis://127.0.0.1:7000/0?cluster=true"}
    line = _one_error_line(_idsync(env, "status"))
    assert line.startswith("Error: REDIS_URL: the Celery broker cannot be a Redis Cluster")
