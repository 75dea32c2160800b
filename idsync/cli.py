"""The operator CLI: `idsync db|token|serve|up|status|…` (stable; scripts and docs rely
on it). Operator mistakes (bad settings, unreachable services, a database without its
schema, a port in use) end a command with one line naming the cause, not a traceback."""

from __future__ import annotations

import errno
import os
import signal
import socket
import sys
import threading
from importlib.metadata import version
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import click
from pydantic import ValidationError

from idsync.operator_errors import describe, settings_error
from idsync.settings import Settings, get_settings

if TYPE_CHECKING:
    from models.db.database import Database

DEFAULT_ORG = "default"


def _settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        raise click.ClickException(settings_error(exc)) from None


def _database(settings: Settings, *, require_schema: bool = True) -> Database:
    """The configured database; by default only once it is migrated (a command run where
    it is not says so instead of failing inside SQLAlchemy, or creating a SQLite file)."""
    from models.db.database import Database
    from models.db.migrate import require_current

    url = settings.resolved_database_url()
    if require_schema:
        require_current(url)
    return Database(url, pool_size=settings.db_pool_size)


class IdsyncGroup(click.Group):
    """The main group: operator mistakes raised anywhere below become one line."""

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
    settings = _settings()
    from idsync.logs import configure_logging

    configure_logging(settings.log_level)


@main.group()
def db() -> None:
    """Database schema management."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations (Alembic) to DATABASE_URL."""
    from models.db.migrate import current, upgrade

    settings = _settings()
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


def _listen(host: str, port: int) -> socket.socket:
    """Bind the API's port first, so that a port in use is one line before anything
    else starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise click.ClickException(
                f"port {port} on {host} is in use: stop what holds it, or choose another "
                "with --port"
            ) from None
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _server(host: str, port: int, app: Any = "idsync.asgi:app") -> Any:
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
    )
    return uvicorn.Server(config)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="API processes.")
def serve(host: str, port: int, workers: int) -> None:
    """Serve the HTTP API (SCIM under /scim/v2, admin API, check API)."""
    import uvicorn

    from models.db.migrate import require_current

    require_current(_settings().resolved_database_url())
    sock = _listen(host, port)
    if workers == 1:
        _server(host, port).run(sockets=[sock])
        return
    sock.close()  # several processes: uvicorn binds and shares the socket itself
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


def _terminate_on_sigterm(signum: int, _frame: FrameType | None) -> NoReturn:
    raise SystemExit(0 if signum == signal.SIGTERM else 128 + signum)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def up(host: str, port: int) -> None:
    """Set up and run everything on the embedded defaults (SQLite, embedded Redis):
    migrate, ensure a default organization and token, start a worker (restarted when it
    exits), serve the API. The banner prints once the API is listening."""
    from idsync.app import create_app
    from idsync.embedded_redis import EmbeddedRedis
    from idsync.supervisor import Child, Probe, Supervisor, say_on_stderr
    from models.db.migrate import upgrade

    settings = _settings()
    sock = _listen(host, port)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url())
    secret = _dev_token(settings)
    probes: list[Probe] = []
    if settings.redis_url:
        redis_url = settings.redis_url
    else:
        embedded = EmbeddedRedis(settings.data_dir)
        redis_url = embedded.start()
        redis_port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
        probes.append(
            Probe(
                "redis",
                alive=lambda: _redis_answers(redis_url),
                restart=lambda: _restart_embedded(embedded, redis_port, redis_url),
            )
        )
    os.environ["REDIS_URL"] = redis_url
    get_settings.cache_clear()  # the API (same process) and the worker must see REDIS_URL
    failure: list[str] = []

    def fatal(line: str) -> None:
        failure.append(line)
        server.should_exit = True

    worker = Child(
        "worker",
        [sys.executable, "-m", "idsync.cli", "worker", "--beat", "-c", "2"],
        dict(os.environ),
    )
    supervisor = Supervisor([worker], probes, on_fatal=fatal)
    # /readyz shows what `up` watches, beside the deployment-wide parts
    server = _server(host, port, create_app(get_settings(), health_extra=supervisor.parts))

    def banner() -> None:
        while not server.started and not server.should_exit:
            threading.Event().wait(0.05)
        if server.started:
            click.echo(f"SCIM base URL: http://{host}:{port}/scim/v2")
            click.echo(f"Bearer token (organization '{DEFAULT_ORG}'): {secret}")
            click.echo(f"Redis: {redis_url}   Database: {settings.resolved_database_url()}")
            sys.stdout.flush()

    threading.Thread(target=banner, name="idsync-banner", daemon=True).start()
    signal.signal(signal.SIGTERM, _terminate_on_sigterm)
    supervisor.start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        supervisor.stop()
    if failure:
        say_on_stderr(failure[0])
        raise SystemExit(1)


def _redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def _restart_embedded(embedded: Any, port: int, url: str) -> None:
    new_url = embedded.start(port)
    if new_url != url:
        raise RuntimeError(f"port {port} was taken; it came back at {new_url}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="The same JSON as /readyz.")
def status(as_json: bool) -> None:
    """Readiness of this deployment, part by part (as /readyz); exits 1 when not ready."""
    import json

    from idsync.embedded_redis import EmbeddedRedis
    from idsync.health import HealthProbe

    settings = _settings()
    unset = "not configured: set REDIS_URL"
    if not settings.redis_url:  # embedded defaults: the running embedded Redis, if any
        url = EmbeddedRedis(settings.data_dir).running_url()
        settings = settings.model_copy(update={"redis_url": url})
        unset = "the embedded Redis is not running (`idsync up` starts it)"
    probe = HealthProbe(settings, _database(settings, require_schema=False), unset_redis=unset)
    readiness = probe.check()
    if as_json:
        click.echo(json.dumps(readiness.as_json(), indent=2))
    else:
        for part in readiness.parts:
            click.echo(f"{part.name:<12} {part.status:<5} {part.reason}")
        click.echo("ready" if readiness.ready else "NOT READY")
    if not readiness.ready:
        raise SystemExit(1)


from idsync.admin_cli import admin_key, apply  # noqa: E402 - registered on main
from idsync.audit_cli import audit  # noqa: E402
from idsync.observe_cli import scim_group, sync_group  # noqa: E402
from worker.commands import beat_cmd, cache_group, worker_cmd  # noqa: E402

main.add_command(admin_key)
main.add_command(audit)
main.add_command(apply)
main.add_command(worker_cmd)
main.add_command(beat_cmd)
main.add_command(cache_group)
main.add_command(sync_group)
main.add_command(scim_group)


@main.command()
def down() -> None:
    """Stop the embedded redis-server that `idsync up` started (it outlives `up`)."""
    from idsync.embedded_redis import EmbeddedRedis

    EmbeddedRedis(_settings().data_dir).stop()
    click.echo("embedded Redis stopped")


if __name__ == "__main__":  # pragma: no cover
    main()
