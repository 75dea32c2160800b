"""The operator CLI: `idsync db|token|serve|up|…` (stable; scripts and docs rely on it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from idsync.settings import Settings, get_settings

if TYPE_CHECKING:
    from models.db.database import Database

DEFAULT_ORG = "default"


def _settings() -> Settings:
    return get_settings()


def _database(settings: Settings) -> Database:
    from models.db.database import Database

    return Database(settings.resolved_database_url(), pool_size=settings.db_pool_size)


@click.group()
def main() -> None:
    """idsync: SCIM 2.0 identity sync, access model and permission cache."""
    settings = _settings()
    from idsync.logs import configure_logging

    configure_logging(settings.log_level)
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)


@main.group()
def db() -> None:
    """Database schema management."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations (Alembic) to DATABASE_URL."""
    from models.db.migrate import current, upgrade

    url = _settings().resolved_database_url()
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
    from models.db.tokens import create_scim_token, get_or_create_org

    database = _database(_settings())
    with database.write() as session:
        org = get_or_create_org(session, org_name)
        secret = create_scim_token(session, org, description)
        org_id = org.id
    click.echo(f"organization {org_name} ({org_id})", err=True)
    click.echo(secret)


@token.command("list")
@click.option("--org", "org_name", default=None)
def token_list(org_name: str | None) -> None:
    """List tokens (prefix, organization, created, last used, revoked)."""
    from models.db.tokens import list_tokens

    database = _database(_settings())
    with database.read() as session:
        rows = list_tokens(session, org_name)
    click.echo("id\tprefix\torganization\tcreated\tlast_used\trevoked\tdescription")
    for tok, org in rows:
        click.echo(
            "\t".join(
                [
                    tok.id,
                    tok.prefix + "…",
                    org,
                    tok.created_at.isoformat(timespec="seconds"),
                    tok.last_used_at.isoformat(timespec="seconds") if tok.last_used_at else "-",
                    tok.revoked_at.isoformat(timespec="seconds") if tok.revoked_at else "-",
                    tok.description,
                ]
            )
        )


@token.command("revoke")
@click.argument("token_id")
def token_revoke(token_id: str) -> None:
    """Revoke a token by id or display prefix."""
    from models.db.tokens import revoke_token

    database = _database(_settings())
    with database.write() as session:
        count = revoke_token(session, token_id)
    if count == 0:
        raise click.ClickException(f"no active token matches {token_id!r}")
    click.echo(f"revoked {count} token(s)")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="API processes.")
def serve(host: str, port: int, workers: int) -> None:
    """Serve the HTTP API (SCIM under /scim/v2, admin API, check API)."""
    import uvicorn

    uvicorn.run(
        "idsync.asgi:app",
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        proxy_headers=True,
    )


def _dev_token(settings: Settings) -> str:
    """The default organization's development token, kept in the data dir (0600)."""
    from models.db.tokens import create_scim_token, get_or_create_org, verify_scim_token

    path: Path = settings.data_dir / "default-org-token"
    database = _database(settings)
    with database.write() as session:
        if path.exists():
            secret = path.read_text().strip()
            if verify_scim_token(session, secret) is not None:
                return secret
        org = get_or_create_org(session, DEFAULT_ORG)
        secret = create_scim_token(session, org, "development token (idsync up)")
    path.write_text(secret + "\n")
    path.chmod(0o600)
    database.dispose()
    return secret


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def up(host: str, port: int) -> None:
    """Set up and run everything on the embedded defaults (SQLite, embedded Redis):
    migrate, ensure a default organization and token, start a worker, serve the API."""
    from idsync.embedded_redis import ensure_redis_url
    from models.db.migrate import upgrade

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url())
    secret = _dev_token(settings)
    redis_url = ensure_redis_url(settings)
    os.environ["REDIS_URL"] = redis_url
    get_settings.cache_clear()  # the API (same process) and the worker must see REDIS_URL
    click.echo(f"SCIM base URL: http://{host}:{port}/scim/v2")
    click.echo(f"Bearer token (organization '{DEFAULT_ORG}'): {secret}")
    click.echo(f"Redis: {redis_url}   Database: {settings.resolved_database_url()}")
    sys.stdout.flush()
    worker = _start_worker_process()
    try:
        serve.callback(host=host, port=port, workers=1)  # type: ignore[misc]
    finally:
        _stop_worker_process(worker)


def _start_worker_process() -> subprocess.Popen[bytes]:
    """`idsync up` runs a worker (with the scheduler) next to the API."""
    cmd = [sys.executable, "-m", "idsync.cli", "worker", "--beat", "-c", "2"]
    return subprocess.Popen(cmd, env=dict(os.environ))  # noqa: S603 - our own CLI


def _stop_worker_process(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


from idsync.admin_cli import admin_key, apply  # noqa: E402 - registered on main
from idsync.audit_cli import audit  # noqa: E402
from worker.commands import beat_cmd, cache_group, worker_cmd  # noqa: E402

main.add_command(admin_key)
main.add_command(audit)
main.add_command(apply)
main.add_command(worker_cmd)
main.add_command(beat_cmd)
main.add_command(cache_group)


@main.command()
def down() -> None:
    """Stop the embedded redis-server that `idsync up` started (it outlives `up`)."""
    from idsync.embedded_redis import EmbeddedRedis

    EmbeddedRedis(_settings().data_dir).stop()
    click.echo("embedded Redis stopped")


if __name__ == "__main__":  # pragma: no cover
    main()
