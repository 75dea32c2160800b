"""Layer: app (CLI). What every CLI command starts from: the settings (a bad value ends the
command with one line), the database (its schema checked first) and, for the commands
that need Redis, the embedded Redis when no REDIS_URL is set; and how credentials (SCIM
tokens, admin keys) are shown."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from datetime import datetime

import click
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from idsync.operator_errors import settings_error
from models.db.base import CredentialColumns
from models.db.database import Database
from models.db.migrate import require_current
from models.db.tables import Organization
from models.db.tokens import get_or_create_org
from models.embedded_redis import ensure_redis_url
from models.settings import Settings, get_settings


def cli_settings() -> Settings:
    """The settings from the environment; a bad value is a ``ClickException`` naming it."""
    try:
        return get_settings()
    except ValidationError as exc:
        raise click.ClickException(settings_error(exc)) from None


def settings_with_redis() -> Settings:
    """The settings, with ``REDIS_URL`` pointing at the embedded redis-server when none is
    set (one embedded Redis shared by every command and the worker it starts)."""
    settings = cli_settings()
    if not settings.redis_url:
        os.environ["REDIS_URL"] = ensure_redis_url(settings)
        get_settings.cache_clear()
        settings = get_settings()
    return settings


def cli_database(settings: Settings, *, require_schema: bool = True) -> Database:
    """The configured database; by default only once it is migrated (a command run where
    it is not says so instead of failing inside SQLAlchemy, or creating a SQLite file)."""
    url = settings.resolved_database_url()
    if require_schema:
        require_current(url)
    return Database(url, pool_size=settings.db_pool_size)


def cli_org_id(database: Database, name: str) -> str:
    """The id of the organization named ``name``; a ``ClickException`` when there is none."""
    with database.read() as session:
        org_id = session.scalar(select(Organization.id).where(Organization.name == name))
    if org_id is None:
        raise click.ClickException(f"no organization named {name!r}")
    return str(org_id)


def _when(at: datetime | None) -> str:
    return at.isoformat(timespec="seconds") if at else "-"


def echo_credentials(rows: Iterable[tuple[CredentialColumns, str]]) -> None:
    """Credentials with their organization's name, one tab-separated line each under a
    header: id, display prefix, organization, created, last used, revoked, description."""
    click.echo("id\tprefix\torganization\tcreated\tlast_used\trevoked\tdescription")
    for row, org in rows:
        fields = [row.id, row.prefix + "…", org, _when(row.created_at)]
        fields += [_when(row.last_used_at), _when(row.revoked_at), row.description]
        click.echo("\t".join(fields))


def create_credential(
    create: Callable[[Session, Organization, str], str], org_name: str, description: str
) -> None:
    """Create a credential (``create`` returns its secret) for the organization named
    ``org_name``, made when missing; its organization on stderr, the secret itself as
    the last line of stdout (shown once)."""
    database = cli_database(cli_settings())
    with database.write() as session:
        org = get_or_create_org(session, org_name)
        secret = create(session, org, description)
        org_id = org.id
    click.echo(f"organization {org_name} ({org_id})", err=True)
    click.echo(secret)
