"""Layer: app (CLI). ``idsync worker``, ``idsync beat`` and ``idsync cache
rebuild|status|reconcile`` (loaded by the main group in idsync.cli)."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from typing import Any

import click
from sqlalchemy import or_, select

from idsync.cli_support import settings_with_redis
from models.cache.connection import CacheRedis, cache_redis
from models.cache.writer import CacheWriter
from models.db.database import Database
from models.db.migrate import require_current
from models.db.tables import Organization
from models.settings import Settings
from worker import rebuild as rb
from worker.broker import ALL_QUEUES, ROUTES, TASK_REBUILD, sender_app
from worker.factory import create_celery
from worker.lanes import ALL_LANES
from worker.reconcile import reconcile
from worker.runtime import cache_redis_url


@click.command("worker")
@click.option("-c", "--concurrency", type=int, default=None, help="Processes (default setting).")
@click.option("-Q", "--queues", default=None, help="Comma-separated queues (default: all).")
@click.option("--beat/--no-beat", default=False, help="Run the scheduler in this worker too.")
@click.option("--loglevel", default="INFO", show_default=True)
def worker_cmd(concurrency: int | None, queues: str | None, beat: bool, loglevel: str) -> None:
    """Run a Celery worker: recompute, revoke, ingest and reconcile queues."""
    settings = settings_with_redis()
    require_current(settings.resolved_database_url())  # one line, not a task failure later
    app = create_celery(settings)
    argv = [
        "worker",
        "-Q",
        queues or ",".join(ALL_QUEUES),
        "-c",
        str(concurrency or settings.worker_concurrency),
        "--loglevel",
        loglevel,
        "-n",
        f"idsync-{os.getpid()}@%h",
    ]
    if beat:
        argv += ["-B", "--scheduler", "worker.beat:LeaderScheduler"]
    app.worker_main(argv)


@click.command("beat")
@click.option("--loglevel", default="INFO", show_default=True)
def beat_cmd(loglevel: str) -> None:
    """Run the scheduler (outbox sweep, reconcile, IdP pull); a Redis leader lock makes
    a second instance a hot standby."""
    settings = settings_with_redis()
    require_current(settings.resolved_database_url())
    app = create_celery(settings)
    app.start(["beat", "--scheduler", "worker.beat:LeaderScheduler", "--loglevel", loglevel])


@click.group("cache")
def cache_group() -> None:
    """The Redis permission cache."""


def _resolve_orgs(database: Database, org: str | None) -> list[tuple[str, str]]:
    with database.read() as session:
        query = select(Organization.id, Organization.name).order_by(Organization.name)
        if org is not None:
            query = query.where(or_(Organization.id == org, Organization.name == org))
        rows = [(str(i), str(n)) for i, n in session.execute(query)]
    if org is not None and not rows:
        raise click.ClickException(f"no organization {org!r}")
    return rows


def _clients(settings: Settings) -> tuple[Database, CacheRedis]:
    database = Database(settings.resolved_database_url(), pool_size=2)
    return database, cache_redis(cache_redis_url(settings))


@cache_group.command("rebuild")
@click.option("--org", default=None, help="Organization name or id (default: all).")
@click.option("--via-worker", is_flag=True, help="Run as worker tasks; show their progress.")
@click.option("--chunk", default=5000, show_default=True, type=int)
@click.option(
    "--timeout",
    default=120.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="--via-worker: give up after this many seconds without progress.",
)
def cache_rebuild(org: str | None, via_worker: bool, chunk: int, timeout: float) -> None:
    """Write a new generation from SQL and flip to it atomically (checks keep answering).

    A rebuild whose process died is taken over once its lease lapses (at most
    10 s: this command waits that long for it)."""
    settings = settings_with_redis()
    database, client = _clients(settings)
    for org_id, name in _resolve_orgs(database, org):
        writer = CacheWriter(client, org_id)
        if via_worker:
            app = sender_app(settings)
            client.delete(writer.keys.rebuild)
            app.send_task(TASK_REBUILD, args=[org_id], queue=ROUTES[TASK_REBUILD]["queue"])
            _follow(writer, name, timeout)
            continue
        with click.progressbar(length=1, label=f"{name}", show_pos=True) as bar:

            def progress(done: int, total: int) -> None:
                bar.length = max(total, 1)
                bar.update(done - bar.pos)

            try:
                report = rb.rebuild(
                    database,
                    writer,
                    org_id,
                    chunk=chunk,
                    progress=progress,
                    wait_s=rb.LEASE_MS / 1000 + 1,
                )
            except rb.RebuildBusy as exc:
                raise click.ClickException(str(exc)) from exc
        click.echo(
            f"{name}: generation {report.gen} at revision {report.revision}: "
            f"{report.users} users, {report.sets} group-set profiles, {report.seconds:.2f}s"
        )


def _follow(writer: Any, name: str, timeout: float) -> None:
    """Show a worker rebuild's progress until it is done; give up with one line when no
    worker took it, its worker died (its lease lapsed), or nothing moved for ``timeout``."""

    def read() -> dict[str, str]:
        raw = writer.redis.hgetall(writer.keys.rebuild)
        return {k.decode(): v.decode() for k, v in raw.items()}

    deadline = time.monotonic() + timeout
    state = read()
    while not state and time.monotonic() < deadline:
        time.sleep(0.2)
        state = read()
    if not state:
        raise click.ClickException(
            f"no worker picked up the rebuild of {name} within {timeout:g}s "
            "(is `idsync worker` running?)"
        )
    seen = (state.get("done"), state.get("heartbeat"))
    moved_at = time.monotonic()
    with click.progressbar(length=max(int(state.get("total", 1)), 1), label=name) as bar:
        while state.get("state") == "running":
            bar.update(int(state.get("done", 0)) - bar.pos)
            time.sleep(0.2)
            state = read()
            now = (state.get("done"), state.get("heartbeat"))
            if now != seen:
                seen, moved_at = now, time.monotonic()
            if state.get("state") != "running":
                break
            if not writer.redis.exists(writer.keys.rebuild_lease):
                state = read()  # it may have flipped (and let go) since the read above
                if state.get("state") != "running":
                    break
                raise click.ClickException(
                    f"the rebuild of {name} stopped: its worker no longer renews the "
                    "rebuild lease (worker died?); run the command again"
                )
            if time.monotonic() - moved_at > timeout:
                raise click.ClickException(
                    f"the rebuild of {name} made no progress for {timeout:g}s "
                    "(is `idsync worker` running?); run the command again"
                )
        bar.update(int(state.get("done", 0)) - bar.pos)
    click.echo(f"{name}: {state.get('state')} (generation {state.get('gen')})")


@cache_group.command("status")
@click.option("--org", default=None, help="Organization name or id (default: all).")
def cache_status(org: str | None) -> None:
    """Generation, watermark, cursor, dirty backlog, rebuild progress, last reconcile."""
    settings = settings_with_redis()
    database, client = _clients(settings)
    for org_id, name in _resolve_orgs(database, org):
        writer = CacheWriter(client, org_id)
        meta = writer.meta()
        backlog = {lane: int(client.zcard(writer.keys.dirty(lane))) for lane in ALL_LANES}
        raw: dict[bytes, bytes] = client.hgetall(writer.keys.rebuild)  # type: ignore[assignment]
        rebuild = _iso_times({k.decode(): v.decode() for k, v in raw.items()})
        rec = client.hget(writer.keys.reconcile, "report")
        out = {
            "org": name,
            "org_id": org_id,
            "built": meta.built,
            "built_at": _iso(meta.built_at),
            "generation": meta.gen,
            "building": meta.building,
            "watermark": meta.wm,
            "cursor": meta.cursor,
            "backlog": backlog,
            "rebuild": rebuild or None,
            "last_reconcile": json.loads(rec) if rec else None,
        }
        click.echo(json.dumps(out, indent=2))


_TIME_FIELDS = frozenset({"started_at", "finished_at", "heartbeat", "built_at"})


def _iso(epoch: float | str | None) -> str | None:
    """A Unix time as ISO 8601 in UTC (``2026-12-03T10:41:51.123+00:00``)."""
    if epoch is None or epoch == "":
        return None
    moment = datetime.fromtimestamp(float(epoch), tz=UTC)
    return moment.isoformat(timespec="milliseconds")


def _iso_times(fields: dict[str, str]) -> dict[str, str | None]:
    return {k: _iso(v) if k in _TIME_FIELDS else v for k, v in fields.items()}


@cache_group.command("reconcile")
@click.option("--org", default=None, help="Organization name or id (default: all).")
@click.option("--dry-run", is_flag=True, help="Report drift, repair nothing.")
def cache_reconcile(org: str | None, dry_run: bool) -> None:
    """Compare the cache with SQL; repair drift; print the counts."""
    settings = settings_with_redis()
    database, client = _clients(settings)
    for org_id, _name in _resolve_orgs(database, org):
        report = reconcile(
            database,
            CacheWriter(client, org_id),
            org_id,
            repair=not dry_run,
            tombstone_retention_s=settings.tombstone_retention_s,
        )
        click.echo(json.dumps(report.as_dict()))
