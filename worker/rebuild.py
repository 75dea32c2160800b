"""Full rebuild: a new generation written beside the serving one, then one atomic flip.

While it runs, the API keeps answering from the old generation and every live write
also lands in the new one (the writer's dual write), so nothing is lost across the
flip. Progress is kept in ``idsync:{org}:rebuild`` (``idsync cache status``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import select

from models.access.inputs import OrgConfig
from models.access.inputs import User as AccessUser
from models.cache.fallback import org_revision, snapshot
from models.cache.profiles import ProfileBuilder
from models.cache.writer import CacheWriter
from models.db.database import Database
from models.db.tables import User as UserRow
from worker.labels import sync_labels

CHUNK: Final = 5_000
STALE_AFTER_S: Final = 120.0
"""A rebuild whose heartbeat is older than this is abandoned by the next one."""

IdRange = tuple[str | None, str | None]
Progress = Callable[[int, int], None]


class RebuildBusy(RuntimeError):
    """Another rebuild of this organization is running."""


@dataclass
class RebuildReport:
    gen: int
    revision: int
    users: int
    sets: int
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
    from models.db.config_loader import load_org_config, load_user_inputs

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
    database: Database, writer: CacheWriter, org_id: str, lo: str | None, hi: str | None
) -> tuple[int, int]:
    """Write users with ``lo <= id < hi`` into the generation being built -> (users, sets)."""
    revision, config, ids, inputs = load_chunk(database, org_id, lo, hi)
    builder = ProfileBuilder(config)
    pointers, sets = builder.for_users(ids, inputs, revision)
    result = writer.put(revision, pointers, sets, building_only=True)
    if result.not_built:
        raise RebuildBusy("the generation being built was abandoned")
    return len(ids), len(sets)


def write_labels(database: Database, writer: CacheWriter, org_id: str) -> None:
    """Registered resource labels into the generation being built (before any chunk, so
    the flip never serves a generation without them)."""
    _rev, result = sync_labels(database, writer, org_id, building_only=True)
    if result.not_built:
        raise RebuildBusy("the generation being built was abandoned")


def start(writer: CacheWriter) -> int:
    """Begin a new generation (taking over a stale one); raises RebuildBusy."""
    started, gen = writer.begin_rebuild()
    if started:
        return gen
    beat = writer.redis.hget(writer.keys.rebuild, "heartbeat")
    if beat is not None and time.time() - float(beat) < STALE_AFTER_S:
        raise RebuildBusy(f"generation {gen} is being built")
    writer.abort_rebuild(gen)
    started, gen = writer.begin_rebuild()
    if not started:
        raise RebuildBusy(f"generation {gen} is being built")
    return gen


def set_progress(writer: CacheWriter, **fields: Any) -> None:
    writer.redis.hset(
        writer.keys.rebuild,
        mapping={**{k: str(v) for k, v in fields.items()}, "heartbeat": str(time.time())},
    )


def rebuild(
    database: Database,
    writer: CacheWriter,
    org_id: str,
    *,
    chunk: int = CHUNK,
    progress: Progress | None = None,
) -> RebuildReport:
    """Rebuild in this process (CLI, benchmarks); the worker runs chunks as tasks."""
    started = time.monotonic()
    gen = start(writer)
    try:
        revision, total, ranges = plan(database, org_id, chunk)
        write_labels(database, writer, org_id)
        writer.redis.delete(writer.keys.rebuild_done)
        set_progress(
            writer,
            state="running",
            gen=gen,
            revision=revision,
            total=total,
            done=0,
            chunks=len(ranges),
            started_at=time.time(),
        )
        done = sets = 0
        for lo, hi in ranges:
            n, s = build_chunk(database, writer, org_id, lo, hi)
            done += n
            sets += s
            set_progress(writer, done=done)
            if progress is not None:
                progress(done, total)
        flipped = writer.flip(gen, revision)
    except BaseException:
        writer.abort_rebuild(gen)
        set_progress(writer, state="failed")
        raise
    seconds = time.monotonic() - started
    set_progress(
        writer,
        state="done" if flipped else "abandoned",
        finished_at=time.time(),
        seconds=round(seconds, 3),
    )
    return RebuildReport(gen, revision, done, sets, len(ranges), seconds, flipped)


def finish_chunk(writer: CacheWriter, gen: int, index: int, users: int) -> bool:
    """Record a finished chunk (idempotent); flip when it was the last one."""
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
        set_progress(writer, state="done", finished_at=time.time())
    return flipped
