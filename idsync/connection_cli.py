"""Layer: app (CLI). ``idsync connection add|list|run|remove`` (IdP connections per
organization) and ``idsync secrets rotate|generate-key`` (the key that encrypts their
credentials); loaded by the main group in idsync.cli. Stable: scripts rely on it.

A credential is read from the environment variable the operator names (``--token-env``,
``--client-secret-env``), never from the command line, where it would end up in shell
history and in every process listing."""

from __future__ import annotations

import json
import os
import time
from typing import Any, Final

import click
from sqlalchemy import select

from idsync.cli_support import cli_database, cli_settings, settings_with_redis
from idsync.connection_inputs import checked_spec
from models.db.config_errors import ConfigError
from models.db.database import Database
from models.db.idp_connections import (
    ConnectionSpec,
    create_connection,
    get_connection,
    list_connections,
    remove_connection,
    rotate_secrets,
)
from models.db.pull_runs import COUNTS, get_run, recent_runs, run_view
from models.db.tables import Organization
from models.db.tokens import get_or_create_org
from models.db.webhooks import rotate_webhook_secrets
from models.secret_box import generate_key
from worker.broker import sender_app
from worker.connection_tasks import send_connection_run
from worker.idp.runs import queue_run

QUEUED_WAIT_S: Final = 30.0
"""How long ``connection run`` waits for a worker to take the run before it gives up."""
POLL_S: Final = 0.2


def _env_secret(var: str | None, option: str) -> str | None:
    if var is None:
        return None
    value = os.environ.get(var)
    if not value:
        raise click.ClickException(
            f"{option} {var}: that environment variable is not set or empty (the "
            "credential is read from it, never from the command line)"
        )
    return value


class _Commands(click.Group):
    """A store error (bad field, unknown id, duplicate name) is one line naming it."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            raise click.ClickException(f"{exc.field}: {exc.message}") from None


@click.group("connection", cls=_Commands)
def connection_group() -> None:
    """IdP connections: upstream directories pulled into an organization on a schedule."""


@connection_group.command("add")
@click.option("--org", "org_name", required=True, help="Organization name (created if needed).")
@click.option("--kind", type=click.Choice(["scim", "okta", "graph"]), required=True)
@click.option("--url", default="", help="SCIM base URL, Okta org URL, or Graph root.")
@click.option("--token-env", default=None, help="Variable holding the SCIM or Okta token.")
@click.option("--client-id", default=None, help="graph: the application (client) id.")
@click.option("--client-secret-env", default=None, help="graph: variable holding the secret.")
@click.option("--token-url", default=None, help="graph: the tenant's OAuth token URL.")
@click.option("--scope", default=None, help="graph: OAuth scope (default Graph's .default).")
@click.option("--name", default=None, help="Unique in the organization (default kind-<id>).")
@click.option("--deactivate-missing", is_flag=True, help="Deactivate users gone upstream.")
@click.option("--every", "every", type=int, default=900, show_default=True, help="Seconds.")
@click.option("--rate-limit", type=float, default=None, help="Requests per second, at most.")
def connection_add(
    org_name: str,
    kind: str,
    url: str,
    token_env: str | None,
    client_id: str | None,
    client_secret_env: str | None,
    token_url: str | None,
    scope: str | None,
    name: str | None,
    deactivate_missing: bool,
    every: int,
    rate_limit: float | None,
) -> None:
    """Add a connection; its id is printed as the last line."""
    option, var, other = (
        ("--client-secret-env", client_secret_env, token_env)
        if kind == "graph"
        else ("--token-env", token_env, client_secret_env)
    )
    if other is not None:
        raise click.ClickException(f"{kind}: the credential's variable is given with {option}")
    if var is None and kind != "scim":
        raise click.ClickException(f"{kind}: {option} VAR is required (the credential's variable)")
    secret = _env_secret(var, option)
    settings = cli_settings()
    box = settings.secret_box() if secret else None  # SecretKeyError: one line
    spec = checked_spec(
        ConnectionSpec(
            kind=kind,
            url=url,
            name=name,
            client_id=client_id,
            token_url=token_url,
            scope=scope,
            interval_s=every,
            deactivate_missing=deactivate_missing,
            rate_limit_per_s=rate_limit,
        ),
        settings,
    )
    database = cli_database(settings)
    with database.write() as session:
        org = get_or_create_org(session, org_name)
        conn = create_connection(session, org.id, spec, secret, box)
        conn_id, conn_name = conn.id, conn.name
    click.echo(f"connection {conn_name} ({kind}) for organization {org_name}", err=True)
    click.echo(conn_id)


def _org_id(database: Database, org_name: str | None) -> str | None:
    if org_name is None:
        return None
    with database.read() as session:
        org_id = session.scalar(select(Organization.id).where(Organization.name == org_name))
    if org_id is None:
        raise click.ClickException(f"no organization named {org_name!r}")
    return str(org_id)


@connection_group.command("list")
@click.option("--org", "org_name", default=None)
def connection_list(org_name: str | None) -> None:
    """List connections (never their credentials) with their last run."""
    database = cli_database(cli_settings())
    org_id = _org_id(database, org_name)
    click.echo(
        "id\torganization\tname\tkind\turl\tevery\tdeactivate_missing\trate_limit\t"
        "enabled\tlast_run"
    )
    with database.read() as session:
        for conn in list_connections(session, org_id):
            runs = recent_runs(session, conn.org_id, conn.id, limit=1)
            last = f"{runs[0].status} {runs[0].started_at:%Y-%m-%dT%H:%M:%S}" if runs else "-"
            org = session.get(Organization, conn.org_id)
            fields = [
                conn.id,
                org.name if org else "?",
                conn.name,
                conn.kind,
                conn.url,
                f"{conn.interval_s}s",
                "yes" if conn.deactivate_missing else "no",
                f"{conn.rate_limit_per_s}/s" if conn.rate_limit_per_s else "-",
                "yes" if conn.enabled else "no",
                last,
            ]
            click.echo("\t".join(fields))


def _wait(database: Database, run_id: int, timeout: float) -> dict[str, Any]:
    started = time.monotonic()
    while True:
        with database.read() as session:
            run = get_run(session, run_id)
            assert run is not None
            shown = run_view(run)
        waited = time.monotonic() - started
        if shown["status"] not in ("queued", "running"):
            return shown
        if shown["status"] == "queued" and waited > min(QUEUED_WAIT_S, timeout):
            raise click.ClickException(
                f"no worker took run {run_id} within {min(QUEUED_WAIT_S, timeout):.0f} s: "
                "is `idsync worker` running? (the run stays queued for the worker)"
            )
        if waited > timeout:
            raise click.ClickException(f"run {run_id} still running after {timeout:.0f} s")
        time.sleep(POLL_S)


@connection_group.command("run")
@click.argument("connection_id")
@click.option("--dry-run", is_flag=True, help="Count what would change; write nothing.")
@click.option("--timeout", type=float, default=3600, show_default=True, help="Seconds.")
@click.option("--json", "as_json", is_flag=True, help="The run record as JSON.")
def connection_run(connection_id: str, dry_run: bool, timeout: float, as_json: bool) -> None:
    """Run a connection now (on a worker), wait, and print what it changed or would."""
    settings = settings_with_redis()
    database = cli_database(settings)
    with database.read() as session:
        conn = get_connection(session, None, connection_id)
        org_id, kind = conn.org_id, conn.kind
    run_id = queue_run(database, org_id, kind, connection_id, dry_run=dry_run)
    send_connection_run(sender_app(settings), connection_id, queued=run_id, dry_run=dry_run)
    shown = _wait(database, run_id, timeout)
    if as_json:
        click.echo(json.dumps(shown, indent=2))
    else:
        for name in COUNTS:
            click.echo(f"{name}\t{shown[name]}")
        what = "dry run, nothing written" if dry_run else "applied"
        click.echo(f"run {run_id}: {shown['status']} ({what})")
    if shown["status"] != "ok":
        status = f" (upstream HTTP {shown['upstream_status']})" if shown["upstream_status"] else ""
        raise click.ClickException(f"run {run_id} {shown['status']}{status}: {shown['error']}")


@connection_group.command("remove")
@click.argument("connection_id")
def connection_remove(connection_id: str) -> None:
    """Remove a connection (its recorded runs stay until they are pruned)."""
    database = cli_database(cli_settings())
    with database.write() as session:
        remove_connection(session, None, connection_id)
    click.echo(f"removed connection {connection_id}")


@click.group("secrets", cls=_Commands)
def secrets_group() -> None:
    """The key that encrypts stored credentials (IDSYNC_SECRET_KEY)."""


@secrets_group.command("rotate")
def secrets_rotate() -> None:
    """Re-encrypt every stored credential under IDSYNC_SECRET_KEY; the keys they were
    written with are given in IDSYNC_SECRET_KEYS_OLD (comma-separated)."""
    settings = cli_settings()
    box = settings.secret_box()
    database = cli_database(settings)
    with database.write() as session:
        rotated, current = rotate_secrets(session, box)
        hooks, hooks_current = rotate_webhook_secrets(session, box)  # docs/events.md
    click.echo(
        f"re-encrypted {rotated} credential(s) and {hooks} webhook signing secret(s) under the "
        f"current key ({current + hooks_current} already were); "
        "the old keys may now be dropped from IDSYNC_SECRET_KEYS_OLD"
    )


@secrets_group.command("generate-key")
def secrets_generate_key() -> None:
    """Print a new random key (for IDSYNC_SECRET_KEY)."""
    click.echo(generate_key())
