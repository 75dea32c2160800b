"""Layer: app (CLI). ``idsync serve`` (the HTTP API) and ``idsync up`` (everything on the
embedded defaults: SQLite, embedded Redis, a supervised worker, the API)."""

from __future__ import annotations

import errno
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any, Final, NoReturn

import click
import redis
import uvicorn

from idsync.app import create_app
from idsync.cli_support import cli_database, cli_settings
from idsync.supervisor import Child, Probe, Supervisor, say_on_stderr
from models.db.migrate import require_current, upgrade
from models.db.tokens import create_scim_token, get_or_create_org, verify_scim_token
from models.embedded_redis import EmbeddedRedis
from models.metrics import MULTIPROC_ENV, prepare_multiprocess_dir, remove_multiprocess_dir
from models.settings import Settings, get_settings

DEFAULT_ORG: Final = "default"


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


ASGI_APP: Final = "idsync.asgi:app"


def _uvicorn_options(host: str, port: int, workers: int = 1) -> dict[str, Any]:
    """The one set of uvicorn options for every way the API is served: logging is
    idsync's own (no uvicorn log config, no access log), proxies' headers are read."""
    return {
        "host": host,
        "port": port,
        "workers": workers,
        "log_config": None,
        "access_log": False,
        "proxy_headers": True,
    }


def _server(host: str, port: int, app: Any = ASGI_APP) -> Any:
    return uvicorn.Server(uvicorn.Config(app, **_uvicorn_options(host, port)))


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="API processes.")
def serve(host: str, port: int, workers: int) -> None:
    """Serve the HTTP API (SCIM under /scim/v2, admin API, check API)."""
    require_current(cli_settings().resolved_database_url())
    sock = _listen(host, port)
    if workers == 1:
        _server(host, port).run(sockets=[sock])
        return
    sock.close()  # several processes: uvicorn binds and shares the socket itself
    # /metrics must sum every process: prometheus_client's multiprocess mode, in the
    # operator's PROMETHEUS_MULTIPROC_DIR (emptied: an earlier run's values must not
    # count again) or in a temporary directory removed when the server stops
    given = bool(os.environ.get(MULTIPROC_ENV))
    metrics_dir = prepare_multiprocess_dir()
    try:
        uvicorn.run(ASGI_APP, **_uvicorn_options(host, port, workers))
    finally:
        if not given:
            remove_multiprocess_dir(metrics_dir)


def _dev_token(settings: Settings) -> str:
    """The default organization's development token, kept in the data dir (0600)."""
    path: Path = settings.data_dir / "default-org-token"
    database = cli_database(settings)
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


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def up(host: str, port: int) -> None:
    """Set up and run everything on the embedded defaults (SQLite, embedded Redis):
    migrate, ensure a default organization and token, start a worker (restarted when it
    exits), serve the API. The banner prints once the API is listening."""
    settings = cli_settings()
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
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def _restart_embedded(embedded: Any, port: int, url: str) -> None:
    new_url = embedded.start(port)
    if new_url != url:
        raise RuntimeError(f"port {port} was taken; it came back at {new_url}")
