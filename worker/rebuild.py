"""Layer: worker. Full rebuild: a new generation written beside the serving one, then one
atomic flip.

While it runs, the API keeps answering from the old generation and every live write
also lands in the new one (the writer's dual write), so nothing is lost across the
flip. Progress is kept in ``idsync:{org}:rebuild`` (``idsync cache status``).

A rebuild holds a lease (``idsync:{org}:rebuild:lease``, taken atomically with the
``building`` mark): an in-process builder renews it from a thread every
``LEASE_MS / 3``; a worker rebuild's chunks renew it as they run. A builder that dies
(SIGKILL, lost host) stops renewing, and the next rebuild takes its generation over
as soon as the lease expires. Chunk writes are pinned to their generation, so a
builder that was only paused can never write into, or flip, the generation that
replaced its own.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

import redis
from sqlalchemy import select

from models.access.inputs import OrgConfig
from models.access.inputs import User as AccessUser
from models.cache.fallback import org_revision, snapshot
from models.cache.profiles import ProfileBuilder
from models.cache.writer import CacheWriter
from models.db.config_loader import load_org_config, load_user_inputs
from models.db.database import Database
from models.db.tables import User as UserRow
from worker.labels import sync_labels

CHUNK: Final = 5_000
LEASE_MS: Final = 10_000
"""Lease of an in-process rebuild (renewed every third of it by a thread): a killed
``idsync cache rebuild`` blocks the next one for at most this long."""
WORKER_LEASE_MS: Final = 60_000
"""Lease of a worker rebuild, renewed by every chunk task: longer than the broker's
visibility timeout plus a chunk, so a chunk redelivered after a worker crash still
finds its generation."""

IdRange = tuple[str | None, str | None]
Progress = Callable[[int, int], None]


class RebuildBusy(RuntimeError):
    """Another rebuild of this organization is running."""


@dataclass(frozen=True, slots=True)
class Build:
    """A started rebuild: the generation being built and its lease token."""

    gen: int
    token: str


@dataclass
class RebuildReport:
    gen: int
    revision: int
    users: int
    sets: int
    """Distinct group-set profiles written (a set shared by users of several chunks
    counts once: the number of fields of the generation's profile hash)."""
    chunks: int
    seconds: float
    flipped: bool


def plan(database: Database, org_id: str, chunk: int = CHUNK) -> tuple[int, int, list[IdRange]]:
    """(revision, users, id ranges of at most ``chunk`` users) at one snapshot."""
    with snapshot(database) as session:
        revision = org_revision(session, org_id)
        ids = list(
            session.scalars(select(UserRow.id).where(UserRow.org_id == org_id).order_by(UserRow.id))
        )
    bounds: list[str | None] = [ids[i] for i in range(0, len(ids), chunk)] or [None]
    bounds[0] = None
    ranges: list[IdRange] = [
        (bounds[i], bounds[i + 1] if i + 1 < len(bounds) else None) for i in range(len(bounds))
    ]
    return revision, len(ids), ranges


def load_chunk(
    database: Database, org_id: str, lo: str | None, hi: str | None
) -> tuple[int, OrgConfig, list[str], dict[str, AccessUser]]:
    """From one SQL snapshot: the revision, the org's config, and the users with
    ``lo <= id < hi`` (None: unbounded) with their evaluator inputs."""
    with snapshot(database) as session:
        revision = org_revision(session, org_id)
        config = load_org_config(session, org_id)
        query = select(UserRow.id).where(UserRow.org_id == org_id)
        if lo is not None:
            query = query.where(UserRow.id >= lo)
        if hi is not None:
            query = query.where(UserRow.id < hi)
        ids = list(session.scalars(query))
        inputs = load_user_inputs(session, org_id, ids)
    return revision, config, ids, inputs


def build_chunk(
    database: Database,
    writer: CacheWriter,
    org_id: str,
    lo: str | None,
    hi: str | None,
    gen: int | None = None,
) -> tuple[int, set[str]]:
    """Write users with ``lo <= id < hi`` into generation ``gen`` being built (None: the
    one being built now) -> (users, group-set keys written)."""
    building = writer.meta().building if gen is None else gen
    if building is None:
        raise RebuildBusy("no generation is being built")
    revision, config, ids, inputs = load_chunk(database, org_id, lo, hi)
    builder = ProfileBuilder(config)
    pointers, sets = builder.for_users(ids, inputs, revision)
    result = writer.put(revision, pointers, sets, building=building)
    if result.not_built:
        raise RebuildBusy("the generation being built was abandoned")
    return len(ids), set(sets)


def write_labels(
    database: Database, writer: CacheWriter, org_id: str, gen: int | None = None
) -> None:
    """Registered resource labels into the generation being built (before any chunk, so
    the flip never serves a generation without them)."""
    building = writer.meta().building if gen is None else gen
    if building is None:
        raise RebuildBusy("no generation is being built")
    _rev, result = sync_labels(database, writer, org_id, building=building)
    if result.not_built:
        raise RebuildBusy("the generation being built was abandoned")


def start(writer: CacheWriter, *, lease_ms: int = LEASE_MS, wait_s: float = 0.0) -> Build:
    """Begin a new generation under a fresh lease, taking over one whose builder died.

    A live rebuild (its lease renewed) raises RebuildBusy, after waiting up to ``wait_s``
    for its lease to lapse."""
    token = uuid.uuid4().hex
    deadline = time.monotonic() + wait_s
    while True:
        started, gen = writer.begin_rebuild(token, lease_ms)
        if started:
            return Build(gen, token)
        if time.monotonic() >= deadline:
            raise RebuildBusy(f"generation {gen} is being built by a live rebuild")
        time.sleep(0.2)


def release(writer: CacheWriter, build: Build) -> None:
    writer.release(writer.keys.rebuild_lease, build.token)


@contextmanager
def renewing(writer: CacheWriter, build: Build, lease_ms: int = LEASE_MS) -> Iterator[None]:
    """Renew the rebuild lease from a daemon thread while the block runs."""
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(lease_ms / 3000):
            try:
                if not writer.renew(writer.keys.rebuild_lease, build.token, lease_ms):
                    return  # taken over: our writes are refused from now on
            except redis.RedisError:  # Redis away: the chunk writes fail as well
                continue

    thread = threading.Thread(target=run, name="idsync-rebuild-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def set_progress(writer: CacheWriter, **fields: Any) -> None:
    writer.redis.hset(
        writer.keys.rebuild,
        mapping={**{k: str(v) for k, v in fields.items()}, "heartbeat": str(time.time())},
    )


def begin_progress(writer: CacheWriter, gen: int, revision: int, total: int, chunks: int) -> None:
    """A rebuild of ``gen`` starts: no chunk done yet, progress ``running`` (the CLI and
    the worker task both start this way)."""
    writer.redis.delete(writer.keys.rebuild_done)
    set_progress(
        writer,
        state="running",
        gen=gen,
        revision=revision,
        total=total,
        done=0,
        chunks=chunks,
        started_at=time.time(),
    )


def rebuild(
    database: Database,
    writer: CacheWriter,
    org_id: str,
    *,
    chunk: int = CHUNK,
    progress: Progress | None = None,
    wait_s: float = 0.0,
) -> RebuildReport:
    """Rebuild in this process (CLI, benchmarks); the worker runs chunks as tasks.
    ``wait_s``: how long to wait for a running rebuild's lease to lapse."""
    started = time.monotonic()
    build = start(writer, wait_s=wait_s)
    gen = build.gen
    try:
        with renewing(writer, build):
            revision, total, ranges = plan(database, org_id, chunk)
            write_labels(database, writer, org_id, gen)
            begin_progress(writer, gen, revision, total, len(ranges))
            done = 0
            set_keys: set[str] = set()
            for lo, hi in ranges:
                n, keys = build_chunk(database, writer, org_id, lo, hi, gen)
                done += n
                set_keys |= keys
                set_progress(writer, done=done)
                if progress is not None:
                    progress(done, total)
            flipped = writer.flip(gen, revision)
    except BaseException:
        writer.abort_rebuild(gen)
        set_progress(writer, state="failed")
        raise
    finally:
        release(writer, build)
    seconds = time.monotonic() - started
    set_progress(
        writer,
        state="done" if flipped else "abandoned",
        finished_at=time.time(),
        seconds=round(seconds, 3),
        sets=len(set_keys),
    )
    return RebuildReport(gen, revision, done, len(set_keys), len(ranges), seconds, flipped)


def finish_chunk(writer: CacheWriter, build: Build, index: int, users: int) -> bool:
    """Record a finished chunk (idempotent); flip when it was the last one."""
    gen = build.gen
    pipe = writer.redis.pipeline(transaction=True)
    pipe.sadd(writer.keys.rebuild_done, index)
    pipe.hincrby(writer.keys.rebuild, "done", users)
    pipe.scard(writer.keys.rebuild_done)
    pipe.hmget(writer.keys.rebuild, ["chunks", "revision", "gen"])
    added, _done, finished, (chunks, revision, pgen) = pipe.execute()
    if not added:  # a redelivered chunk: undo the double count
        writer.redis.hincrby(writer.keys.rebuild, "done", -users)
    set_progress(writer)
    if pgen is None or int(pgen) != gen or int(finished) < int(chunks):
        return False
    flipped = writer.flip(gen, int(revision))
    if flipped:
        set_progress(
            writer,
            state="done",
            finished_at=time.time(),
            sets=writer.redis.hlen(writer.keys.sets(gen)),
        )
        release(writer, build)
    return flipped
