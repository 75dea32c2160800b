"""Layer: worker. Change -> dirty -> drain -> cache: the plain functions behind the Celery tasks.

- ``ingest_outbox`` reads the ``changes`` table past the organization's cursor (the
  outbox is the source of truth; the after-commit hook is only the fast path), marks
  the affected users / groups dirty and re-applies mapping rules for new or renamed
  groups, rewrites the registered-label hash after ``config.resource.*`` changes
  (``worker.labels``), then advances the cursor — marks and cursor in one Redis
  transaction.
- ``drain`` takes a lease per lane group, and recomputes dirty members in batches
  from current SQL state (never a payload), so running it twice is harmless; every
  write is revision-guarded. Priority lanes (config, revoke) and the bulk lane
  (grants) are drained by different tasks on different queues.

Dirty members coalesce: 50k change rows for 2k users are 2k ZSET members, and one
batch recomputes up to ``batch`` of them with one SQL snapshot and one Redis write.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from opentelemetry import trace
from sqlalchemy import select

from models.cache.fallback import org_revision, snapshot
from models.cache.layout import (
    ALL_GROUPS,
    LANE_CONFIG,
    STREAM_USER_EVENTS_MAX,
)
from models.cache.profiles import ProfileBuilder, SetPayload
from models.cache.writer import CacheWriter, PutResult
from models.db.config_loader import load_org_config, load_user_inputs, users_in_groups
from models.db.database import Database
from models.db.rule_application import apply_mapping_rules
from models.db.tables import Change
from models.db.tables import User as UserRow
from models.tracing import span
from worker.labels import sync_labels
from worker.lanes import (
    ALL_LANES,
    BULK_LANES,
    LABEL_KINDS,
    PRIORITY,
    PRIORITY_LANES,
    RULE_KINDS,
    WAKE_OF,
    lanes_for,
)
from worker.write_links import link_writes

log = logging.getLogger("idsync.worker")

WAKE_MS: Final = 5_000
"""Lifetime of a wake flag: while set, further marks do not enqueue another drain."""
LEASE_MS: Final = 15_000
"""Drain lease; renewed after every batch (a batch takes well under a second)."""
INGEST_LEASE_MS: Final = 10_000
BATCH: Final = 1_000
BUDGET_S: Final = 5.0
"""A drain invocation works at most this long, then re-enqueues itself (continuation),
so no task comes near the broker visibility timeout."""
OUTBOX_PAGE: Final = 2_000
RULES_ACTOR: Final = "worker:mapping-rules"

Enqueue = Callable[[str, str], None]
"""``enqueue(org_id, wake)`` sends the drain task of ``wake`` (PRIORITY or BULK)."""


@dataclass
class IngestReport:
    rows: int = 0
    cursor: int = 0
    rule_groups: int = 0
    labels_synced: int = 0
    not_built: bool = False
    busy: bool = False
    wakes: set[str] = field(default_factory=set)


@dataclass
class DrainReport:
    processed: int = 0
    batches: int = 0
    backlog: int = 0
    watermark: int = 0
    busy: bool = False
    not_built: bool = False
    stale: int = 0
    continuation: bool = False
    """The budget ran out: the caller sends the next drain task."""


def _apply_rules(database: Database, org_id: str, group_ids: set[str]) -> None:
    with database.write() as session:
        apply_mapping_rules(session, org_id, group_ids=sorted(group_ids), actor=RULES_ACTOR)


def ingest_outbox(database: Database, writer: CacheWriter, org_id: str) -> IngestReport:
    """Mark everything in the change log past the cursor dirty; advance the cursor.

    One catch-up at a time per organization (the ingest lease). A caller that finds it
    busy asks the holder to read the outbox once more before it lets go (``claim`` /
    ``release_idle``), so a change committed after the holder's last read is never left
    for the sweep."""
    report = IngestReport()
    meta = writer.meta()
    if not meta.writable:
        report.not_built = True
        return report
    lease, again = writer.keys.ingest_lease, writer.keys.ingest_again
    token = writer.claim(lease, again, INGEST_LEASE_MS)
    if token is None:
        report.busy = True
        return report
    held = True
    try:
        cursor = meta.cursor
        while True:
            cursor = _ingest_pages(database, writer, org_id, cursor, token, report)
            if writer.release_idle(lease, again, token, INGEST_LEASE_MS) != 0:
                held = False
                break
            cursor = max(cursor, writer.meta().cursor)
        report.cursor = cursor
    finally:
        if held:
            writer.release(lease, token)
    return report


def _ingest_pages(
    database: Database,
    writer: CacheWriter,
    org_id: str,
    cursor: int,
    token: str,
    report: IngestReport,
) -> int:
    """Every change row past ``cursor``, page by page -> the new cursor."""
    while True:
        with database.read() as session:
            rows = session.execute(
                select(Change.revision, Change.kind, Change.user_ids, Change.group_ids)
                .where(Change.org_id == org_id, Change.revision > cursor)
                .order_by(Change.revision)
                .limit(OUTBOX_PAGE)
            ).all()
        if not rows:
            return cursor
        rule_groups = {g for r in rows if r.kind in RULE_KINDS for g in r.group_ids}
        if rule_groups:
            _apply_rules(database, org_id, rule_groups)
            report.rule_groups += len(rule_groups)
        if any(r.kind in LABEL_KINDS for r in rows):  # before the cursor passes them
            sync_labels(database, writer, org_id)
            report.labels_synced += 1
        pipe = writer.script_pipeline(transaction=True)
        wakes: list[str] = []
        for r in rows:
            for lane, members in lanes_for(r.kind, r.user_ids, r.group_ids):
                writer.mark(lane, int(r.revision), members, WAKE_OF[lane], WAKE_MS, pipe)
                wakes.append(WAKE_OF[lane])
        cursor = int(rows[-1].revision)
        writer.queue_raise_meta(pipe, "cursor", cursor)  # after the marks it passes
        results = pipe.execute()
        report.wakes.update(w for w, res in zip(wakes, results, strict=False) if res == 1)
        report.rows += len(rows)
        writer.renew(writer.keys.ingest_lease, token, INGEST_LEASE_MS)
        if len(rows) < OUTBOX_PAGE:
            return cursor


def _fault_pause(seconds: float) -> None:
    """Testing hook (IDSYNC_FAULT_DRAIN_PAUSE_S): widen the compute-to-write window."""
    if seconds > 0:
        time.sleep(seconds)


def recompute_users(
    database: Database,
    writer: CacheWriter,
    org_id: str,
    users: Sequence[str],
    *,
    pause_s: float = 0.0,
) -> tuple[int, PutResult]:
    """Recompute ``users`` from one SQL snapshot; one guarded write. -> (revision, result)."""
    with snapshot(database) as session:
        revision = org_revision(session, org_id)
        config = load_org_config(session, org_id)
        inputs = load_user_inputs(session, org_id, users)
    builder = ProfileBuilder(config)
    pointers, sets = builder.for_users(users, inputs, revision)
    _fault_pause(pause_s)
    return revision, traced_put(writer, revision, pointers, sets)


def traced_put(
    writer: CacheWriter,
    revision: int,
    pointers: Mapping[str, str] | None,
    sets: Mapping[str, SetPayload] | Collection[SetPayload],
) -> PutResult:
    """``writer.put`` in a span (``idsync.cache.write``) when the task is traced."""
    attributes: dict[str, str | int] = {
        "idsync.org_id": writer.org_id,
        "idsync.cache.revision": revision,
        "idsync.cache.users": len(pointers or ()),
        "idsync.cache.sets": len(sets),
    }
    with span("idsync.cache.write", attributes) as current:
        result = writer.put(revision, pointers, sets)
        current.set_attributes(
            {
                "idsync.cache.written": result.written,
                "idsync.cache.stale": result.stale,
                "idsync.cache.not_built": result.not_built,
            }
        )
    return result


def recompile_groups(
    database: Database,
    writer: CacheWriter,
    org_id: str,
    groups: Sequence[str],
    *,
    pause_s: float = 0.0,
) -> tuple[int, PutResult, int]:
    """Recompile the group sets of every member of ``groups`` (``*``: all users).

    Work is proportional to the number of distinct group sets, not of members: a role
    change on a 50k-member group where members share a few group sets compiles a few
    sets and writes a few hash fields. -> (revision, result, members)
    """
    with snapshot(database) as session:
        revision = org_revision(session, org_id)
        config = load_org_config(session, org_id)
        if ALL_GROUPS in groups:
            members: set[str] = set(
                session.scalars(select(UserRow.id).where(UserRow.org_id == org_id))
            )
        else:
            members = users_in_groups(session, org_id, groups)
        inputs = load_user_inputs(session, org_id, members)
    builder = ProfileBuilder(config)
    sets = {}
    for user in inputs.values():
        if user.can_act:
            payload = builder.build(user.group_ids, revision)
            sets[payload.key] = payload
    _fault_pause(pause_s)
    result = traced_put(writer, revision, None, sets)
    if result.changed_sets:
        if len(members) <= STREAM_USER_EVENTS_MAX:
            writer.emit({"u": u, "ws": "*", "rev": revision} for u in sorted(members))
        else:
            writer.emit([{"u": "*", "ws": "*", "rev": revision}])
    return revision, result, len(members)


def drain(
    database: Database,
    writer: CacheWriter,
    org_id: str,
    wake: str,
    *,
    enqueue: Enqueue | None = None,
    budget_s: float = BUDGET_S,
    batch: int = BATCH,
    pause_s: float = 0.0,
) -> DrainReport:
    """Drain the lanes of ``wake`` (PRIORITY: config then revoke; BULK: grant).

    Wake-ups are never lost: a drain that finds the lease held asks the holder to run
    once more (``claim``); a mark that finds the wake flag set does the same (``MARK``);
    the holder releases the lease — and clears the wake flag, so the next mark enqueues
    a drain again — only when no such request came in since its last catch-up and
    lane read (``release_idle``, one atomic script). Out of budget, it releases and
    asks for a continuation (``report.continuation``)."""
    lanes = PRIORITY_LANES if wake == PRIORITY else BULK_LANES
    report = DrainReport()
    trace.get_current_span().set_attributes({"idsync.org_id": org_id, "idsync.wake": wake})
    if not writer.meta().writable:
        writer.redis.delete(writer.keys.wake(wake))  # later marks enqueue again
        report.not_built = True
        return report
    lease, again = writer.keys.lease(wake), writer.keys.again(wake)
    token = writer.claim(lease, again, LEASE_MS)
    if token is None:
        report.busy = True
        report.backlog = writer.backlog(lanes)
        return report
    held = True
    deadline = time.monotonic() + budget_s
    try:
        while True:
            link_writes(writer, wake)  # traced writes whose marks this round drains
            ingest = ingest_outbox(database, writer, org_id)
            if enqueue is not None:  # the other drain's flag was set here: send its task
                for w in ingest.wakes - {wake}:
                    enqueue(org_id, w)
            lease_at = (lease, token)
            stop = _drain_lanes(
                database, writer, org_id, lanes, lease_at, report, deadline, batch, pause_s
            )
            if stop == "lost":
                log.warning("drain lease lost", extra={"org_id": org_id, "wake": wake})
                held = False
            if stop is not None:
                break
            if writer.release_idle(lease, again, token, LEASE_MS, writer.keys.wake(wake)) != 0:
                held = False
                break
    finally:
        if held:
            writer.release(lease, token)
    report.watermark = writer.watermark(ALL_LANES)
    report.backlog = writer.backlog(lanes)
    return report


def _drain_lanes(
    database: Database,
    writer: CacheWriter,
    org_id: str,
    lanes: Sequence[str],
    lease_at: tuple[str, str],
    report: DrainReport,
    deadline: float,
    batch: int,
    pause_s: float,
) -> str | None:
    """Batches until the lanes are empty (None) or: "budget", "not_built", "lost"
    (the lease ``(key, token)`` is renewed after every batch)."""
    lease, token = lease_at
    while True:
        if time.monotonic() >= deadline:
            report.continuation = True
            return "budget"
        item = _next_batch(writer, lanes, batch)
        if item is None:
            return None
        lane, members = item
        result = _process(database, writer, org_id, lane, members, pause_s)
        if result is None:
            report.not_built = True
            return "not_built"
        report.processed += len(members)
        report.stale += result
        report.batches += 1
        writer.redis.hincrby(writer.keys.stats, f"recomputed:{lane}", len(members))
        if not writer.renew(lease, token, LEASE_MS):
            return "lost"


def _next_batch(
    writer: CacheWriter, lanes: Iterable[str], batch: int
) -> tuple[str, list[str]] | None:
    for lane in lanes:
        items = writer.pending(lane, batch)
        if items:
            return lane, [m for m, _ in items]
    return None


def _process(
    database: Database,
    writer: CacheWriter,
    org_id: str,
    lane: str,
    members: list[str],
    pause_s: float,
) -> int | None:
    """One batch; marks the members done at the revision they were computed at.
    -> stale writes refused by the guard, or None when the cache is not built."""
    with span("idsync.recompute", {"idsync.lane": lane, "idsync.members": len(members)}) as current:
        if lane == LANE_CONFIG:
            revision, result, _n = recompile_groups(
                database, writer, org_id, members, pause_s=pause_s
            )
        else:
            revision, result = recompute_users(database, writer, org_id, members, pause_s=pause_s)
        current.set_attribute("idsync.revision", revision)
        if result.not_built:
            return None
        writer.done(lane, revision, members)
        return result.stale


def summary(report: Any) -> dict[str, Any]:
    return {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(report).items()}
