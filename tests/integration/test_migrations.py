"""Alembic migrations on real PostgreSQL and SQLite databases.

`check` is the guard against a model change without a migration: it compares a
database upgraded to head with `models.db.metadata` and must find nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import make_url

from models.db import migrate
from models.db.database import Database
from models.db.metadata import metadata
from models.db.session import normalize_url
from models.db.tables import Organization, User

PG_ADMIN_URL = os.environ.get("IDSYNC_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _fresh_pg_database() -> Iterator[str]:
    admin = create_engine(normalize_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    name = f"idsync_mig_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield (
            make_url(normalize_url(PG_ADMIN_URL))
            .set(database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test."""
    yield from _fresh_pg_database()


@pytest.fixture
def fresh_sqlite(tmp_path: Path) -> str:
    """A SQLite file that does not exist yet, in a directory that does not exist yet."""
    return f"sqlite:///{tmp_path / 'not-yet' / 'idsync.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest) -> str:
    name = "fresh_sqlite" if request.param == "sqlite" else "fresh_pg"
    url: str = request.getfixturevalue(name)
    return url


def _tables(url: str) -> set[str]:
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def test_single_head() -> None:
    assert len(migrate.heads()) == 1


def test_upgrade_fresh_database_matches_metadata(empty_url: str) -> None:
    assert migrate.current(empty_url) is None

    migrate.upgrade(empty_url)

    assert migrate.current(empty_url) == migrate.heads()[0]
    assert set(metadata.tables) <= _tables(empty_url)
    assert migrate.check(empty_url) == []


def test_upgrade_is_idempotent(empty_url: str) -> None:
    migrate.upgrade(empty_url)
    migrate.upgrade(empty_url)
    migrate.upgrade(empty_url, "head")

    assert migrate.current(empty_url) == migrate.heads()[0]
    assert migrate.check(empty_url) == []


def test_migrated_schema_serves_the_application(empty_url: str) -> None:
    migrate.upgrade(empty_url)
    db = Database(empty_url)
    try:
        with db.write() as session:
            org = Organization(name="acme")
            session.add(org)
            session.flush()
            session.add(
                User(
                    org_id=org.id,
                    user_name="Ada@Example.com",
                    user_name_norm="ada@example.com",
                    attrs={"name": {"givenName": "Ada"}, "emails": [{"value": "a@x"}]},
                )
            )
        with db.read() as session:
            user = session.scalars(select(User)).one()
            assert user.attrs["name"]["givenName"] == "Ada"
            assert user.created_at.tzinfo is not None
    finally:
        db.dispose()


def test_check_reports_schema_differences(empty_url: str) -> None:
    """What a forgotten migration looks like: database and models disagree."""
    migrate.upgrade(empty_url)
    engine = create_engine(normalize_url(empty_url))
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP INDEX ix_scim_users_org_id_updated_at"))
            conn.execute(text("CREATE TABLE stray (id INTEGER PRIMARY KEY)"))
    finally:
        engine.dispose()

    problems = migrate.check(empty_url)

    assert any("ix_scim_users_org_id_updated_at" in p for p in problems), problems
    assert any("remove_table" in p and "stray" in p for p in problems), problems


def test_check_reports_database_behind_head(empty_url: str) -> None:
    problems = migrate.check(empty_url)
    assert any("migrations head" in p for p in problems)


def test_downgrade_to_base_and_back(empty_url: str) -> None:
    migrate.upgrade(empty_url)
    with migrate._connect(empty_url) as conn:
        command.downgrade(migrate.alembic_config(connection=conn), "base")
        conn.commit()
    assert migrate.current(empty_url) is None
    assert not set(metadata.tables) & _tables(empty_url)

    migrate.upgrade(empty_url)
    assert migrate.check(empty_url) == []


def test_refuses_tables_made_without_migrations_until_stamped(fresh_sqlite: str) -> None:
    db = Database(fresh_sqlite.replace("/not-yet", ""))
    try:
        metadata.create_all(db.engine)
    finally:
        db.dispose()
    url = db.url

    with pytest.raises(RuntimeError, match="no migration history"):
        migrate.upgrade(url)

    migrate.stamp(url, "head")
    migrate.upgrade(url)
    assert migrate.current(url) == migrate.heads()[0]
    assert migrate.check(url) == []


def test_concurrent_upgrades_serialize(empty_url: str) -> None:
    """Several processes starting at once (API replicas, workers) may all migrate."""
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            migrate.upgrade(empty_url)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert migrate.current(empty_url) == migrate.heads()[0]
    assert migrate.check(empty_url) == []


def test_concurrent_upgrades_from_several_processes(empty_url: str) -> None:
    """`idsync db upgrade` started by several containers at the same moment."""
    code = "import sys; from models.db import migrate; migrate.upgrade(sys.argv[1])"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, empty_url], stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    failures = [p.communicate()[1].decode() for p in procs if p.wait() != 0]

    assert failures == []
    assert migrate.current(empty_url) == migrate.heads()[0]
    assert migrate.check(empty_url) == []


def _sql(url: str, *statements: str) -> list[tuple[object, ...]]:
    """Run statements in one transaction; the rows of the last one."""
    engine = create_engine(normalize_url(url))
    try:
        with engine.begin() as conn:
            rows: list[tuple[object, ...]] = []
            for statement in statements:
                result = conn.execute(text(statement))
                rows = [tuple(r) for r in result] if result.returns_rows else []
            return rows
    finally:
        engine.dispose()


def test_0004_space_ids_per_workspace_keeps_data(empty_url: str) -> None:
    """Spaces and their assignments made under 0003 (ids unique per organization) survive
    0004; then two workspaces may both have a Space `uk`; downgrading refuses while they
    do and restores the old key once they do not."""
    migrate.upgrade(empty_url, "0003_users_page_index")
    now = "'2026-12-01 00:00:00+00:00'"
    _sql(
        empty_url,
        "INSERT INTO organizations (id, name, revision, created_at)"
        f" VALUES ('o1', 'acme', 0, {now})",
        *(
            "INSERT INTO workspaces (org_id, id, name, permissions_model, spaces_enabled,"
            f" approvals_required, created_at, updated_at) VALUES ('o1', '{w}', '', 'v2', true,"
            f" false, {now}, {now})"
            for w in ("eu", "us")
        ),
        f"INSERT INTO spaces (org_id, id, workspace_id, name, created_at)"
        f" VALUES ('o1', 'uk', 'eu', 'UK', {now})",
        "INSERT INTO scim_groups (id, org_id, display_name, display_name_norm, attrs,"
        f" created_at, updated_at, version) VALUES ('g1', 'o1', 'G', 'g', '{{}}', {now}, {now}, 1)",
        "INSERT INTO space_assignments (id, org_id, group_id, space_id, source, created_at)"
        f" VALUES ('a1', 'o1', 'g1', 'uk', 'manual', {now})",
    )

    migrate.upgrade(empty_url)

    assert migrate.check(empty_url) == []
    assert _sql(
        empty_url,
        "SELECT id, org_id, group_id, workspace_id, space_id, source FROM space_assignments",
    ) == [("a1", "o1", "g1", "eu", "uk", "manual")]
    _sql(
        empty_url,
        f"INSERT INTO spaces (org_id, workspace_id, id, name, created_at)"
        f" VALUES ('o1', 'us', 'uk', 'UK too', {now})",
        "INSERT INTO space_assignments (id, org_id, group_id, workspace_id, space_id, source,"
        f" created_at) VALUES ('a2', 'o1', 'g1', 'us', 'uk', 'manual', {now})",
    )
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        _sql(
            empty_url,
            f"INSERT INTO spaces (org_id, workspace_id, id, name, created_at)"
            f" VALUES ('o1', 'us', 'uk', 'again', {now})",
        )

    with (
        migrate._connect(empty_url) as conn,
        pytest.raises(RuntimeError, match="o1/uk"),
    ):
        command.downgrade(migrate.alembic_config(connection=conn), "0003_users_page_index")
    assert migrate.current(empty_url) == migrate.heads()[0]

    _sql(
        empty_url,
        "DELETE FROM space_assignments WHERE workspace_id = 'us'",
        "DELETE FROM spaces WHERE workspace_id = 'us'",
    )
    with migrate._connect(empty_url) as conn:
        command.downgrade(migrate.alembic_config(connection=conn), "0003_users_page_index")
        conn.commit()
    assert migrate.current(empty_url) == "0003_users_page_index"
    assert _sql(empty_url, "SELECT id, group_id, space_id FROM space_assignments") == [
        ("a1", "g1", "uk")
    ]
