"""The operator CLI, run as a real subprocess against a fresh database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from idsync.app import create_app
from idsync.settings import Settings
from models.db.database import Database


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
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from models.db.session import normalize_url
    from tests.conftest import PG_ADMIN_URL

    admin = create_engine(normalize_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    name = f"idsync_cli_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


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
