"""Layer: app (CLI). The operator CLI: `idsync db|token|serve|up|status|…` (stable; scripts
and docs rely on it). Operator mistakes (bad settings, unreachable services, a database
without its schema, a port in use) end a command with one line naming the cause, not a
traceback.

The main group loads a command's module only when that command runs (click's lazy
subcommands): `idsync token list` does not import the HTTP app or Celery."""

from __future__ import annotations

import importlib
import json
import os
from importlib.metadata import version
from typing import Any, Final

import click
from pydantic import ValidationError

from idsync.cli_support import cli_database, cli_settings, create_credential, echo_credentials
from idsync.health import HealthProbe
from idsync.logs import configure_logging
from idsync.operator_errors import describe, settings_error
from models.db.migrate import current, upgrade
from models.db.tokens import create_scim_token, list_tokens, revoke_token
from models.embedded_redis import EmbeddedRedis
from models.settings import get_settings

LAZY_COMMANDS: Final = {
    "admin-key": "idsync.admin_cli:admin_key",
    "apply": "idsync.admin_cli:apply",
    "audit": "idsync.audit_cli:audit",
    "beat": "idsync.worker_cli:beat_cmd",
    "cache": "idsync.worker_cli:cache_group",
    "connection": "idsync.connection_cli:connection_group",
    "scim": "idsync.observe_cli:scim_group",
    "secrets": "idsync.connection_cli:secrets_group",
    "serve": "idsync.serve_cli:serve",
    "sync": "idsync.observe_cli:sync_group",
    "up": "idsync.serve_cli:up",
    "webhook": "idsync.webhook_cli:webhook_group",
    "worker": "idsync.worker_cli:worker_cmd",
}
"""Command name -> ``module:attribute``, imported on first use."""


class IdsyncGroup(click.Group):
    """The main group: operator mistakes raised anywhere below become one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = LAZY_COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            line = _operator_line(exc)
            if line is None:
                raise
            raise click.ClickException(line) from None


def _operator_line(exc: BaseException) -> str | None:
    try:
        settings = get_settings()
    except ValidationError as bad:
        return settings_error(bad)
    return describe(
        exc,
        database_url=settings.resolved_database_url(),
        redis_url=os.environ.get("REDIS_URL") or settings.resolved_cache_redis_url(),
    )


@click.group(cls=IdsyncGroup)
@click.version_option(version("idsync"), "--version", prog_name="idsync")
def main() -> None:
    """idsync: SCIM 2.0 identity sync, access model and permission cache."""
    settings = cli_settings()
    configure_logging(settings.log_level)


@main.group()
def db() -> None:
    """Database schema management."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations (Alembic) to DATABASE_URL."""
    settings = cli_settings()
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.resolved_database_url()
    upgrade(url, revision)
    click.echo(f"database at revision {current(url)}")


@main.group()
def token() -> None:
    """SCIM bearer tokens (stored hashed; shown once)."""


@token.command("create")
@click.option("--org", "org_name", required=True, help="Organization name (created if needed).")
@click.option("--description", default="", help="What the token is for (e.g. 'Okta').")
def token_create(org_name: str, description: str) -> None:
    """Create a token; the token is printed as the last line."""
    create_credential(create_scim_token, org_name, description)


@token.command("list")
@click.option("--org", "org_name", default=None)
def token_list(org_name: str | None) -> None:
    """List tokens (prefix, organization, created, last used, revoked)."""
    database = cli_database(cli_settings())
    with database.read() as session:
        echo_credentials(list_tokens(session, org_name))


@token.command("revoke")
@click.argument("token_id")
def token_revoke(token_id: str) -> None:
    """Revoke a token by id or display prefix."""
    database = cli_database(cli_settings())
    with database.write() as session:
        count = revoke_token(session, token_id)
    if count == 0:
        raise click.ClickException(f"no active token matches {token_id!r}")
    click.echo(f"revoked {count} token(s)")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="The same JSON as /readyz.")
def status(as_json: bool) -> None:
    """Readiness of this deployment, part by part (as /readyz); exits 1 when not ready."""
    settings = cli_settings()
    unset = "not configured: set REDIS_URL"
    if not settings.redis_url:  # embedded defaults: the running embedded Redis, if any
        url = EmbeddedRedis(settings.data_dir).running_url()
        settings = settings.model_copy(update={"redis_url": url})
        unset = "the embedded Redis is not running (`idsync up` starts it)"
    probe = HealthProbe(settings, cli_database(settings, require_schema=False), unset_redis=unset)
    readiness = probe.check()
    if as_json:
        click.echo(json.dumps(readiness.as_json(), indent=2))
    else:
        for part in readiness.parts:
            click.echo(f"{part.name:<12} {part.status:<5} {part.reason}")
        click.echo("ready" if readiness.ready else "NOT READY")
    if not readiness.ready:
        raise SystemExit(1)


@main.command()
def down() -> None:
    """Stop the embedded redis-server that `idsync up` started (it outlives `up`)."""
    EmbeddedRedis(cli_settings().data_dir).stop()
    click.echo("embedded Redis stopped")


if __name__ == "__main__":  # pragma: no cover
    main()
