"""The declarative file's ``connections:`` section (idsync apply), on both backends: the
credential is referenced by environment variable and stored encrypted, applying twice
changes nothing, a changed credential or setting is an update, a connection left out is
removed, a missing variable or an inlined secret names the field, a dry run writes nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from idsync.declarative import apply_file, parse_config
from models.db.config_errors import ConfigError
from models.db.connection_tables import IdpConnection
from models.db.database import Database
from models.db.idp_connections import reveal_secret
from models.db.tokens import get_or_create_org
from models.secret_box import SecretBox, generate_key
from models.settings import get_settings

FILE = """
organization: acme
connections:
  - name: okta-prod
    kind: okta
    url: https://acme.okta.com
    secret_env: ACME_OKTA_TOKEN
    interval_s: 600
    deactivate_missing: true
  - name: entra
    kind: graph
    client_id: app-1
    token_url: https://login.microsoftonline.com/tenant/oauth2/v2.0/token
    secret_env: ACME_GRAPH_SECRET
    rate_limit_per_s: 5
"""


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    value = generate_key()
    monkeypatch.setenv("IDSYNC_SECRET_KEY", value)
    monkeypatch.setenv("ACME_OKTA_TOKEN", "okta-token-1")
    monkeypatch.setenv("ACME_GRAPH_SECRET", "graph-secret-1")
    get_settings.cache_clear()
    yield value
    get_settings.cache_clear()


def _apply(db: Database, text: str, dry_run: bool = False) -> list[str]:
    return apply_file(db, None, parse_config(text), dry_run=dry_run, actor="test").diff


def _stored(db: Database, key: str) -> dict[str, tuple[str, str | None]]:
    with db.read() as s:
        return {
            c.name: (c.kind, reveal_secret(c, SecretBox(key)))
            for c in s.scalars(select(IdpConnection))
        }


def test_apply_creates_is_idempotent_updates_and_removes(
    database: Database, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with database.write() as s:
        get_or_create_org(s, "acme")
    assert _apply(database, FILE, dry_run=True) == [
        "+ connection okta-prod (okta https://acme.okta.com)",
        "+ connection entra (graph default URL)",
    ]
    assert _stored(database, key) == {}  # the dry run wrote nothing
    assert len(_apply(database, FILE)) == 2
    assert _stored(database, key) == {
        "okta-prod": ("okta", "okta-token-1"),
        "entra": ("graph", "graph-secret-1"),
    }
    with database.read() as s:
        assert all("token-1" not in (c.secret_enc or "") for c in s.scalars(select(IdpConnection)))
    assert _apply(database, FILE) == []  # the same file, the same credentials: nothing
    monkeypatch.setenv("ACME_OKTA_TOKEN", "okta-token-2")
    changed = FILE.replace("interval_s: 600", "interval_s: 300")
    assert _apply(database, changed) == ["~ connection okta-prod"]
    assert _stored(database, key)["okta-prod"] == ("okta", "okta-token-2")
    only_okta = changed.split("  - name: entra", maxsplit=1)[0]
    assert _apply(database, only_okta) == ["- connection entra"]


def test_file_errors_name_the_field(database: Database, key: str) -> None:
    with database.write() as s:
        get_or_create_org(s, "acme")
    with pytest.raises(ConfigError) as missing:
        _apply(database, FILE.replace("ACME_GRAPH_SECRET", "NOT_SET_ANYWHERE"))
    assert missing.value.field == "connections[1].secret_env"
    assert "NOT_SET_ANYWHERE is not set" in missing.value.message
    assert _stored(database, key) == {}  # one transaction: nothing of the file was written
    with pytest.raises(ConfigError) as inlined:
        _apply(database, FILE.replace("secret_env: ACME_OKTA_TOKEN", "secret: okta-token-1"))
    assert inlined.value.field == "connections[0].secret"
    with pytest.raises(ConfigError) as bad:
        _apply(database, FILE.replace("kind: okta", "kind: ldap"))
    assert bad.value.field == "connections[0].kind"
