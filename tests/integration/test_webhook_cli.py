"""``idsync webhook …`` as a real subprocess, starting with the exact commands of
docs/events.md (Subscribe): the secret comes from the environment, never argv or output;
the id is the last line; list, deliveries, redeliver, resume, remove."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from models.db.database import Database
from models.db.event_tables import Event, WebhookSubscription
from models.db.tables import Organization
from models.db.webhooks import open_secret
from models.secret_box import SecretBox, generate_key
from scim.context import ScimContext
from scim.users import create_user
from tests.support.scim_client import user_body
from worker.events.derive import derive

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "events.md"


def _docs_subscribe_block() -> str:
    text = DOCS.read_text()
    match = re.search(r"### Subscribe\s*```sh\n(.*?)```", text, re.S)
    assert match is not None, "docs/events.md lost its Subscribe commands"
    return match.group(1)


def _run(env: dict[str, str], argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def _idsync(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return _run(env, [sys.executable, "-m", "idsync.cli", *args])


def test_the_documented_webhook_commands(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "IDSYNC_"))}
    env.pop("REDIS_URL", None)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env.update(
        IDSYNC_DATA_DIR=str(tmp_path / "data"),
        DATABASE_URL=url,
        IDSYNC_SECRET_KEY=generate_key(),
    )
    assert _idsync(env, "db", "upgrade").returncode == 0
    assert _idsync(env, "token", "create", "--org", "acme").returncode == 0

    # the docs' block, as written (bash, from the project root)
    block = _docs_subscribe_block()
    shown = block + '\necho "secret=$WEBHOOK_SECRET" >&2\n'
    added = _run(env, ["bash", "-euo", "pipefail", "-c", shown])
    assert added.returncode == 0, added.stderr
    secret = re.search(r"secret=(\S+)", added.stderr)
    assert secret is not None
    sub_id = added.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"[0-9a-f-]{36}", sub_id)
    assert secret.group(1) not in added.stdout and secret.group(1) not in block

    listed = _idsync(env, "webhook", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (view,) = json.loads(listed.stdout)
    assert view["id"] == sub_id and view["org"] == "acme" and view["state"] == "active"
    assert view["events"] == ["permissions.changed", "user.created", "user.deactivated"]
    assert secret.group(1) not in listed.stdout

    db = Database(url)
    try:
        with db.read() as s:
            stored = s.get(WebhookSubscription, sub_id)
            assert stored is not None and secret.group(1) not in stored.secret_sealed
        table = _idsync(env, "webhook", "list", "--org", "acme")
        assert sub_id in table.stdout and "active" in table.stdout

        # an event to redeliver: a SCIM user create (its change row), derived into events
        with db.read() as s:
            org_id = str(s.scalar(select(Organization.id).where(Organization.name == "acme")))
        ctx = ScimContext(org_id=org_id, actor="test", base_url="http://idsync.test/scim/v2")
        with db.write() as s:
            create_user(s, ctx, user_body("ada@example.com"))
        assert derive(db, org_id).events == 1
        with db.read() as s:
            event_id = s.scalars(select(Event.event_id).where(Event.org_id == org_id)).one()
        assert _idsync(env, "webhook", "redeliver", sub_id, "evt_nope").returncode == 1
        again = _idsync(env, "webhook", "redeliver", sub_id, event_id)
        assert again.returncode == 0, again.stderr
        log = _idsync(env, "webhook", "deliveries", sub_id)
        assert event_id in log.stdout and "redelivery pending" in log.stdout
    finally:
        db.dispose()

    def add(org: str, secret_env: str, *extra: str) -> subprocess.CompletedProcess[str]:
        url = "https://x.example/h"
        args = ("webhook", "add", "--org", org, "--url", url, "--secret-env", secret_env)
        return _idsync({**env, "S": "0123456789abcdef0"}, *args, *extra)

    missing = add("acme", "NOT_SET_ANYWHERE")
    assert missing.returncode == 1 and "NOT_SET_ANYWHERE is not set" in missing.stderr
    no_org = add("nobody", "S")
    assert no_org.returncode == 1 and "no organization named 'nobody'" in no_org.stderr
    bad = add("acme", "S", "--events", "nope")
    assert bad.returncode == 1 and "unknown event type" in bad.stderr

    # a new key: `idsync secrets rotate` re-encrypts the signing secret under it
    rotated_env = {
        **env,
        "IDSYNC_SECRET_KEY": generate_key(),
        "IDSYNC_SECRET_KEYS_OLD": env["IDSYNC_SECRET_KEY"],
    }
    rotation = _idsync(rotated_env, "secrets", "rotate")
    assert rotation.returncode == 0, rotation.stderr
    assert "1 webhook signing secret(s)" in rotation.stdout
    db = Database(url)
    try:
        with db.read() as s:
            stored = s.get(WebhookSubscription, sub_id)
            assert stored is not None
            box = SecretBox(rotated_env["IDSYNC_SECRET_KEY"])  # the new key alone opens it
            assert open_secret(box, stored.secret_sealed) == secret.group(1)
    finally:
        db.dispose()

    deliveries = _idsync(env, "webhook", "deliveries", sub_id)
    assert deliveries.returncode == 0 and "state=active" in deliveries.stdout
    assert _idsync(env, "webhook", "resume", sub_id).returncode == 0
    removed = _idsync(env, "webhook", "remove", sub_id)
    assert removed.returncode == 0 and sub_id in removed.stdout
    assert json.loads(_idsync(env, "webhook", "list", "--json").stdout) == []
    assert _idsync(env, "webhook", "remove", sub_id).returncode == 1
