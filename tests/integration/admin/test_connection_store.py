"""IdP connections in SQL (models.db.idp_connections), on PostgreSQL and SQLite: the stored
column holds ciphertext only, views never carry the credential, rotation re-encrypts every
credential, due connections are claimed once, and the per-connection lease excludes a
second run of the same connection only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from models.db.base import utcnow
from models.db.config_errors import ConfigError, ConflictError, NotFoundError
from models.db.database import Database
from models.db.idp_connections import (
    ConnectionSpec,
    claim_due,
    create_connection,
    drop_lease,
    get_connection,
    list_connections,
    reveal_secret,
    rotate_secrets,
    take_lease,
    view,
)
from models.db.observability_tables import IdpPullRun
from models.db.pull_runs import prune_runs, recent_runs
from models.db.tokens import get_or_create_org
from models.secret_box import SecretBox, SecretKeyError, generate_key

OKTA = ConnectionSpec(kind="okta", url="https://acme.okta.com", name="okta")


def _orgs(database: Database) -> tuple[str, str]:
    with database.write() as s:
        return get_or_create_org(s, "acme").id, get_or_create_org(s, "globex").id


def test_the_credential_is_stored_encrypted_and_never_viewed(database: Database) -> None:
    a, _b = _orgs(database)
    box = SecretBox(generate_key())
    with database.write() as s:
        conn = create_connection(s, a, OKTA, "okta-api-token-123", box)
        conn_id = conn.id
    with database.read() as s:
        stored = s.execute(
            text("SELECT secret_enc FROM idp_connections WHERE id = :id"), {"id": conn_id}
        ).scalar_one()
        conn = get_connection(s, a, conn_id)
        shown = view(s, conn)
        assert reveal_secret(conn, box) == "okta-api-token-123"
    assert "okta-api-token-123" not in stored and stored.startswith("gAAAA")  # Fernet
    assert "okta-api-token-123" not in repr(shown) and shown["has_secret"] is True
    assert "secret_enc" not in shown and shown["organization"] == "acme"


def test_validation_names_the_field_and_names_are_unique_per_org(database: Database) -> None:
    a, b = _orgs(database)
    box = SecretBox(generate_key())
    with database.write() as s:
        with pytest.raises(ConfigError, match="kind"):
            create_connection(s, a, ConnectionSpec(kind="ldap", url="https://x"), "t", box)
        with pytest.raises(ConfigError, match="client_id"):
            create_connection(s, a, ConnectionSpec(kind="graph", url=""), "t", box)
        with pytest.raises(ConfigError, match="secret"):
            create_connection(s, a, OKTA, None, box)
        with pytest.raises(ConfigError, match="url"):
            create_connection(s, a, ConnectionSpec(kind="scim", url="ftp://x"), None, None)
        create_connection(s, a, OKTA, "t", box)
        create_connection(s, b, OKTA, "t", box)  # another organization: its own names
    with database.write() as s, pytest.raises(ConflictError):
        create_connection(s, a, OKTA, "t", box)
    with database.write() as s:
        graph = create_connection(
            s,
            a,
            ConnectionSpec(kind="graph", url="", client_id="app", token_url="https://login/t"),
            "cs",
            box,
        )
        assert graph.url == "https://graph.microsoft.com" and graph.name.startswith("graph-")
        assert graph.scope == "https://graph.microsoft.com/.default"


def test_a_credential_needs_the_key(database: Database) -> None:
    a, _b = _orgs(database)
    with database.write() as s:
        # an open SCIM upstream needs no credential, and so no key
        create_connection(s, a, ConnectionSpec(kind="scim", url="https://idp/scim"), None, None)
    with pytest.raises(SecretKeyError, match="IDSYNC_SECRET_KEY is not set"):
        SecretBox(None)


def test_one_org_never_reads_another_orgs_connection(database: Database) -> None:
    a, b = _orgs(database)
    box = SecretBox(generate_key())
    with database.write() as s:
        conn_id = create_connection(s, a, OKTA, "t", box).id
    with database.read() as s:
        with pytest.raises(NotFoundError):
            get_connection(s, b, conn_id)
        assert list_connections(s, b) == [] and len(list_connections(s, a)) == 1
        assert len(list_connections(s, None)) == 1  # the operator sees every organization


def test_rotation_reencrypts_every_credential(database: Database) -> None:
    a, b = _orgs(database)
    old, new = generate_key(), generate_key()
    with database.write() as s:
        ids = [
            create_connection(s, a, OKTA, "secret-a", SecretBox(old)).id,
            create_connection(s, b, OKTA, "secret-b", SecretBox(old)).id,
        ]
    with database.write() as s, pytest.raises(SecretKeyError):
        rotate_secrets(s, SecretBox(new))  # the old key not given: nothing is written
    both = SecretBox(new, [old])
    with database.write() as s:
        assert rotate_secrets(s, both) == (2, 0)
    with database.write() as s:
        assert rotate_secrets(s, both) == (0, 2)  # idempotent
    with database.read() as s:
        for conn_id, secret in zip(ids, ("secret-a", "secret-b"), strict=True):
            assert reveal_secret(get_connection(s, None, conn_id), SecretBox(new)) == secret


def test_due_connections_are_claimed_once_and_leases_are_per_connection(
    database: Database,
) -> None:
    a, b = _orgs(database)
    box = SecretBox(generate_key())
    with database.write() as s:
        one = create_connection(s, a, OKTA, "t", box).id
        two = create_connection(s, b, OKTA, "t", box).id
        off = create_connection(
            s, b, ConnectionSpec(kind="okta", url="https://x", name="off", enabled=False), "t", box
        ).id
    now = utcnow()
    with database.write() as s:
        assert sorted(claim_due(s, now)) == sorted([one, two]) and off not in claim_due(s, now)
    with database.write() as s:
        assert claim_due(s, now) == []  # moved to their next slot
        assert sorted(claim_due(s, now + timedelta(seconds=901))) == sorted([one, two])
    with database.write() as s:
        assert take_lease(s, one, "w1", 60)
        assert not take_lease(s, one, "w2", 60)  # the same connection: held
        assert take_lease(s, two, "w2", 60)  # another connection: no shared lock
        drop_lease(s, one, "w2")  # not the owner: nothing happens
    with database.write() as s:
        assert not take_lease(s, one, "w3", 60)
        drop_lease(s, one, "w1")
    with database.write() as s:
        assert take_lease(s, one, "w3", -1)  # free again; an expired lease...
    with database.write() as s:
        assert take_lease(s, one, "w4", 60)  # ...is taken over (a killed run)


def test_runs_older_than_the_retention_are_pruned(database: Database) -> None:
    a, _b = _orgs(database)
    now = utcnow()
    with database.write() as s:
        for age_days in (40, 31, 29, 1):
            s.add(
                IdpPullRun(
                    org_id=a,
                    connection="c1",
                    source="okta",
                    started_at=now - timedelta(days=age_days),
                    status="ok",
                )
            )
    assert prune_runs(database, 30 * 86_400) == 2
    assert prune_runs(database, 30 * 86_400) == 0  # idempotent
    with database.read() as s:
        assert len(recent_runs(s, a, "c1")) == 2
