"""`idsync connection …` and `idsync secrets …` as an operator runs them (subprocesses, a real
worker, PostgreSQL, Redis, a SCIM upstream on localhost): the documented blocks of
docs/operations.md run as written (add with the credential read from the named variable,
dry run, run, list; key rotation), and the operator mistakes are one line each."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from models.db.connection_tables import IdpConnection
from models.db.database import Database
from models.db.idp_connections import reveal_secret
from models.db.observability_tables import IdpPullRun
from models.db.tables import User
from models.secret_box import SecretBox, SecretKeyError, generate_key
from tests.integration.worker.conftest import ROOT, WorkerProcess
from tests.support.fake_idp import FakeIdp
from tests.support.live_server import live_server

DOC = ROOT / "docs" / "operations.md"
DOC_URL = "https://idp.example.com/scim/v2"
DOC_TOKEN = "the upstream bearer token"


def _block(name: str) -> str:
    match = re.search(rf"<!-- connections: {name} -->\n```sh\n(.*?)```", DOC.read_text(), re.S)
    assert match, f"docs/operations.md lost its `connections: {name}` block"
    return match.group(1)


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False
    )


def _bash(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return _run(["bash", "-c", "set -euo pipefail\n" + script], env)


def _idsync(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "idsync.cli", *args], env)


def _counts(out: str) -> list[dict[str, int]]:
    """The count blocks `connection run` printed, one per run."""
    runs: list[dict[str, int]] = [{}]
    for line in out.splitlines():
        name, tab, value = line.partition("\t")
        if tab and value.isdigit() and name in ("users_created", "members_added"):
            runs[-1][name] = int(value)
        if line.startswith("run "):
            runs.append({})
    return runs[:-1]


def test_the_documented_commands_run_as_written(
    workers: WorkerProcess, pg_database: Database, tmp_path: Path
) -> None:
    idp = FakeIdp()
    up = idp.tenant("acme", DOC_TOKEN)
    up.user("a1", "ann@acme.test")
    up.user("a2", "abe@acme.test")
    up.group("ga", "eng", ["a1", "a2"])
    key = generate_key()
    env = workers.env(IDSYNC_SECRET_KEY=key)
    workers.start(IDSYNC_SECRET_KEY=key)
    with live_server(idp.app()) as base:
        script = _block("run").replace(DOC_URL, f"{base}/acme/scim/v2")
        done = _bash(script, env)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    dry, real = _counts(done.stdout)
    assert dry == real == {"users_created": 2, "members_added": 2}  # the dry run wrote nothing
    assert any(re.fullmatch(r"run \d+: ok \(dry run, nothing written\)", x) for x in lines)
    assert any(re.fullmatch(r"run \d+: ok \(applied\)", x) for x in lines)
    listed = [x for x in lines if "\tacme\t" in x]
    assert len(listed) == 1 and "\tscim\t" in listed[0] and "\tok " in listed[0]
    assert DOC_TOKEN not in done.stdout + done.stderr
    # the credential came from the variable, reached the upstream, and is stored encrypted
    assert {auth for _, auth in up.seen} == {f"Bearer {DOC_TOKEN}"}
    with pg_database.read() as s:
        conn = s.scalars(select(IdpConnection)).one()
        assert conn.deactivate_missing and conn.interval_s == 900
        assert DOC_TOKEN not in (conn.secret_enc or "")
        assert reveal_secret(conn, SecretBox(key)) == DOC_TOKEN
        assert len(s.scalars(select(User)).all()) == 2
        runs = s.scalars(select(IdpPullRun).order_by(IdpPullRun.id)).all()
        assert [(r.dry_run, r.status) for r in runs] == [(True, "ok"), (False, "ok")]
        conn_id = conn.id

    status = _idsync(env, "sync", "status", "--org", "acme")
    pull_line = next(x for x in status.stdout.splitlines() if x.startswith("idp pull (scim-"))
    assert " healthy " in pull_line, status.stdout
    assert "users +2 ~0 -0, groups +1 ~0, members +2 -0" in status.stdout

    # key rotation, as documented
    rotated = _bash(_block("rotate") + 'echo "NEW_KEY=$IDSYNC_SECRET_KEY"\n', env)
    assert rotated.returncode == 0, rotated.stderr[-3000:]
    assert "re-encrypted 1 credential(s)" in rotated.stdout
    new_key = rotated.stdout.split("NEW_KEY=")[1].strip()
    with pg_database.read() as s:
        conn = s.scalars(select(IdpConnection)).one()
        assert reveal_secret(conn, SecretBox(new_key)) == DOC_TOKEN
        try:
            SecretBox(key).decrypt(conn.secret_enc or "")
        except SecretKeyError:
            pass
        else:
            raise AssertionError("the old key still opens the rotated credential")
    again = _idsync({**env, "IDSYNC_SECRET_KEY": new_key}, "secrets", "rotate")
    assert again.returncode == 0 and "re-encrypted 0 credential(s)" in again.stdout
    assert "(1 already were)" in again.stdout

    removed = _idsync(env, "connection", "remove", conn_id)
    assert removed.returncode == 0 and removed.stdout.strip() == f"removed connection {conn_id}"
    gone = _idsync(env, "connection", "run", conn_id)
    assert gone.returncode == 1 and gone.stderr.strip() == (
        f"Error: connection: no connection {conn_id!r}"
    )


def test_operator_mistakes_are_one_line(
    workers: WorkerProcess, pg_database: Database, tmp_path: Path
) -> None:
    key = generate_key()
    env = workers.env(IDSYNC_SECRET_KEY=key, GRAPH_SECRET="graph-client-secret")
    add = ["connection", "add", "--org", "acme"]
    unset = _idsync(
        env, *add, "--kind", "okta", "--url", "https://a.okta.com", "--token-env", "NOPE"
    )
    assert unset.returncode == 1
    assert unset.stderr.strip() == (
        "Error: --token-env NOPE: that environment variable is not set or empty (the "
        "credential is read from it, never from the command line)"
    )
    no_key = {k: v for k, v in env.items() if k != "IDSYNC_SECRET_KEY"}
    keyless = _idsync(
        {**no_key, "OKTA_TOKEN": "t"},
        *add,
        "--kind",
        "okta",
        "--url",
        "https://a.okta.com",
        "--token-env",
        "OKTA_TOKEN",
    )
    assert keyless.returncode == 1 and len(keyless.stderr.strip().splitlines()) == 1
    assert keyless.stderr.startswith("Error: IDSYNC_SECRET_KEY is not set")
    graph = _idsync(
        env,
        *add,
        "--kind",
        "graph",
        "--client-id",
        "app-1",
        "--client-secret-env",
        "GRAPH_SECRET",
        "--token-url",
        "https://login.microsoftonline.com/t/oauth2/v2.0/token",
        "--name",
        "entra",
    )
    assert graph.returncode == 0, graph.stderr
    graph_id = graph.stdout.strip().splitlines()[-1]
    dup = _idsync(
        env,
        *add,
        "--kind",
        "graph",
        "--client-id",
        "x",
        "--client-secret-env",
        "GRAPH_SECRET",
        "--token-url",
        "https://login/t",
        "--name",
        "entra",
    )
    assert dup.returncode == 1 and "name: the organization has a connection named" in dup.stderr
    listed = _idsync(env, "connection", "list", "--org", "acme")
    assert listed.returncode == 0 and graph_id in listed.stdout
    assert "graph-client-secret" not in listed.stdout
    assert "https://graph.microsoft.com" in listed.stdout
    with pg_database.read() as s:
        conn = s.scalars(select(IdpConnection)).one()
        assert reveal_secret(conn, SecretBox(key)) == "graph-client-secret"
    # no worker runs here: `connection run` says so instead of waiting forever
    waited = _idsync(env, "connection", "run", graph_id, "--timeout", "2")
    assert waited.returncode == 1 and "no worker took run" in waited.stderr
