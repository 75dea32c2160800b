"""Layer: app (CLI). Commands of the admin side: ``idsync admin-key create|list|revoke`` and
``idsync apply FILE [--dry-run]`` (loaded by the main group in idsync.cli)."""

from __future__ import annotations

from pathlib import Path

import click

from idsync.cli_support import cli_database, cli_settings, create_credential, echo_credentials
from idsync.declarative import apply_file, load_config_file
from models.db.admin_keys import create_admin_key, list_admin_keys, revoke_admin_key
from models.db.config_errors import ConfigError
from models.db.database import Database


def _database() -> Database:
    return cli_database(cli_settings())


@click.group("admin-key")
def admin_key() -> None:
    """Organization admin API keys (stored hashed; shown once)."""


@admin_key.command("create")
@click.option("--org", "org_name", required=True, help="Organization name (created if needed).")
@click.option("--description", default="", help="What the key is for.")
def admin_key_create(org_name: str, description: str) -> None:
    """Create a key; the key is printed as the last line."""
    create_credential(create_admin_key, org_name, description)


@admin_key.command("list")
@click.option("--org", "org_name", default=None)
def admin_key_list(org_name: str | None) -> None:
    """List keys (prefix, organization, created, last used, revoked)."""
    database = _database()
    with database.read() as session:
        echo_credentials(list_admin_keys(session, org_name))


@admin_key.command("revoke")
@click.argument("key_id")
def admin_key_revoke(key_id: str) -> None:
    """Revoke a key by id or display prefix."""
    database = _database()
    with database.write() as session:
        count = revoke_admin_key(session, key_id)
    if count == 0:
        raise click.ClickException(f"no active admin key matches {key_id!r}")
    click.echo(f"revoked {count} key(s)")


@click.command("apply")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--org", "org_name", default=None, help="Organization (default: the file's).")
@click.option("--dry-run", is_flag=True, help="Print the diff; write nothing.")
def apply(file: Path, org_name: str | None, dry_run: bool) -> None:
    """Apply a declarative configuration file (YAML or JSON), idempotently."""
    try:
        config = load_config_file(file)
        result = apply_file(
            _database(), org_name, config, dry_run=dry_run, actor=f"apply:{file.name}"
        )
    except ConfigError as exc:
        where = f"{exc.field}: " if exc.field else ""
        raise click.ClickException(f"{file}: {where}{exc.message}") from exc
    for line in result.diff:
        click.echo(line)
    for problem in result.problems:
        click.echo(f"! {problem}", err=True)
    # the cost of the run (grows with rules x groups); stderr, beside the problems
    click.echo(f"mapping rules: {result.evaluations} regular expressions evaluated", err=True)
    if not result.diff:
        click.echo("no changes")
    elif dry_run:
        click.echo(f"dry run: {len(result.diff)} change(s), nothing written")
    else:
        click.echo(f"applied {len(result.diff)} change(s) ({result.change_rows} change rows)")
