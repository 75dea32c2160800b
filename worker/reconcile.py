"""Layer: worker. Cache-vs-SQL reconcile: detect and repair drift, report counts.

Compares, chunk by chunk from one SQL snapshot each, what every user should point at
(and what every group set should contain) with what the serving generation holds.
Members still waiting in a dirty lane, and entries written at a newer revision than
the snapshot, are not drift (the pipeline owns them). Repairs go through the same
revision-guarded writer, so a repair can never undo a newer write. A cache without
a serving generation (never built, flushed) is reported and handed to a rebuild.
The registered-label hash is compared with SQL as well and rewritten when it drifted.

Before comparing, mapping rules are re-applied to every group. The outbox catch-up
applies them to created / renamed groups, but a rebuild's flip (or a flushed cache)
moves the cursor past change rows it never read: a group created in that window
would never get its rule bindings. Re-applying is idempotent (no row and no change
row when nothing changes); when bindings do change, the ``config.rules.applied``
change row flows through the config lane like any other. It runs chunk by chunk
(``apply_in_chunks``); the worker's reconcile task passes ``apply_rules=False`` and
requests the same as a job of its own (``worker.rule_jobs``), since every rule on
every group can take longer than a task may.

Tombstones of deleted users (``-`` pointers of ids SQL no longer has) are dropped once
the change that wrote them is older than the retention (``IDSYNC_TOMBSTONE_RETENTION_S``,
default one day; see docs/worker.md for why they must outlive every in-flight writer).
Age is measured on the change log's clock: the tombstone's revision is a change row
whose ``created_at`` says when that revision was written.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any, Final

from sqlalchemy import select

from models.cache.layout import (
    LANE_CONFIG,
    LANE_GRANT,
    LANE_REVOKE,
    NO_ACCESS,
    decode_set,
    decode_user,
)
from models.cache.profiles import ProfileBuilder, SetPayload
from models.cache.writer import CacheWriter
from models.db.base import utcnow
from models.db.database import Database
from models.db.rule_application import apply_in_chunks
from models.db.tables import Change
from worker.labels import diff_labels, sync_labels
from worker.pipeline import RULES_ACTOR
from worker.rebuild import CHUNK, load_chunk, plan

TOMBSTONE_RETENTION_S: Final = 86_400.0


@dataclass
class ReconcileReport:
    org_id: str
    cache_missing: bool = False
    rebuilding: bool = False
    revision: int = 0
    users_checked: int = 0
    users_missing: int = 0
    users_wrong: int = 0
    users_extra: int = 0
    users_pending: int = 0
    sets_checked: int = 0
    sets_missing: int = 0
    sets_wrong: int = 0
    labels_missing: int = 0
    labels_wrong: int = 0
    labels_extra: int = 0
    repaired: int = 0
    rule_bindings_created: int = 0
    rule_bindings_removed: int = 0
    tombstones_pruned: int = 0
    tombstones_retained: int = 0
    seconds: float = 0.0

    @property
    def drift(self) -> int:
        return (
            self.users_missing
            + self.users_wrong
            + self.users_extra
            + self.sets_missing
            + self.sets_wrong
            + self.labels_missing
            + self.labels_wrong
            + self.labels_extra
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "drift": self.drift}


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def reapply_rules(database: Database, org_id: str, *, repair: bool = True) -> tuple[int, int]:
    """Mapping rules on every group, in chunks -> (bindings created, removed); a dry run
    rolls each chunk back."""
    result = apply_in_chunks(database, org_id, actor=RULES_ACTOR, repair=repair)
    return len(result.created), len(result.removed)


def old_revisions(
    database: Database, org_id: str, revisions: set[int], retention_s: float
) -> set[int]:
    """Those of ``revisions`` whose change row was written more than ``retention_s`` ago.

    A revision without a change row is not returned (kept: its age is unknown)."""
    cutoff = utcnow() - timedelta(seconds=retention_s)
    old: set[int] = set()
    ordered = sorted(revisions)
    for i in range(0, len(ordered), 1000):
        with database.read() as session:
            rows = session.execute(
                select(Change.revision, Change.created_at).where(
                    Change.org_id == org_id, Change.revision.in_(ordered[i : i + 1000])
                )
            )
            old.update(int(rev) for rev, at in rows if at <= cutoff)
    return old


def reconcile(  # noqa: PLR0915 - one pass, kept linear
    database: Database,
    writer: CacheWriter,
    org_id: str,
    *,
    repair: bool = True,
    apply_rules: bool = True,
    chunk: int = CHUNK,
    tombstone_retention_s: float | None = TOMBSTONE_RETENTION_S,
) -> ReconcileReport:

    started = time.monotonic()
    report = ReconcileReport(org_id)
    if apply_rules:
        report.rule_bindings_created, report.rule_bindings_removed = reapply_rules(
            database, org_id, repair=repair
        )
    meta = writer.meta()
    if meta.gen is None:
        report.cache_missing = True
        report.rebuilding = meta.building is not None
        _store(writer, report, started)
        return report
    r = writer.redis
    ukey, skey, ckey = writer.keys.generation(meta.gen)
    pending: set[str] = set()
    for lane in (LANE_REVOKE, LANE_GRANT):
        pending.update(_s(m) for m in r.zrange(writer.keys.dirty(lane), 0, -1))
    config_pending = bool(r.zcard(writer.keys.dirty(LANE_CONFIG)))
    _rev, _total, ranges = plan(database, org_id, chunk)
    sql_ids: set[str] = set()
    for lo, hi in ranges:
        revision, config, ids, inputs = load_chunk(database, org_id, lo, hi)
        report.revision = revision
        sql_ids.update(ids)
        pointers, sets = ProfileBuilder(config).for_users(ids, inputs, revision)
        fix_users: dict[str, str] = {}
        fix_sets: dict[str, SetPayload] = {}
        if ids:
            for uid, cur in zip(ids, r.hmget(ukey, ids), strict=True):
                report.users_checked += 1
                if uid in pending:
                    report.users_pending += 1
                    continue
                if cur is None:
                    report.users_missing += 1
                    fix_users[uid] = pointers[uid]
                    continue
                key, rev = decode_user(_s(cur))
                if rev <= revision and key != pointers[uid]:
                    report.users_wrong += 1
                    fix_users[uid] = pointers[uid]
        set_keys = sorted(sets)
        if set_keys:
            stored = r.hmget(skey, set_keys)
            cids = sorted({c for p in sets.values() for c in p.blobs})
            blobs = r.hmget(ckey, cids) if cids else []  # sets with no role anywhere: none
            present = {c: x is not None for c, x in zip(cids, blobs, strict=True)}
            for key, cur in zip(set_keys, stored, strict=True):
                report.sets_checked += 1
                payload = sets[key]
                if cur is None:
                    report.sets_missing += 1
                    fix_sets[key] = payload
                    continue
                rev, entries = decode_set(_s(cur))
                blobs_ok = all(present[c] for c in entries.values() if c in present)
                if rev <= revision and (entries != payload.entries or not blobs_ok):
                    if not config_pending or not blobs_ok:
                        report.sets_wrong += 1
                    fix_sets[key] = payload
        if repair and (fix_users or fix_sets):
            result = writer.put(revision, fix_users, fix_sets)
            report.repaired += result.written + result.changed_sets
    # users in the cache that SQL does not know (deleted while a hook was lost)
    extra: dict[str, str] = {}
    tombstones: dict[str, tuple[str, int]] = {}  # deleted users: uid -> (value, revision)
    for uid_raw, cur in r.hscan_iter(ukey, count=1000):
        uid = _s(uid_raw)
        if uid in sql_ids or uid in pending:
            continue
        key, rev = decode_user(_s(cur))
        if key != NO_ACCESS and rev <= report.revision:
            extra[uid] = NO_ACCESS
        elif key == NO_ACCESS:
            tombstones[uid] = (_s(cur), rev)
    report.users_extra = len(extra)
    if repair and extra:
        report.repaired += writer.put(report.revision, extra).written
    if tombstones and tombstone_retention_s is not None:
        old = old_revisions(
            database, org_id, {rev for _v, rev in tombstones.values()}, tombstone_retention_s
        )
        due = {uid: value for uid, (value, rev) in tombstones.items() if rev in old}
        pruned = len(due)
        if repair and due:
            pruned = max(writer.prune_tombstones(meta.gen, due), 0)
        report.tombstones_pruned = pruned
        report.tombstones_retained = len(tombstones) - pruned
    else:
        report.tombstones_retained = len(tombstones)
    labels = diff_labels(database, writer, org_id, meta.gen)
    report.labels_missing, report.labels_wrong = labels.missing, labels.wrong
    report.labels_extra = labels.extra
    if repair and labels.drift:
        report.repaired += len(sync_labels(database, writer, org_id)[1].changed)
    _store(writer, report, started)
    return report


def _store(writer: CacheWriter, report: ReconcileReport, started: float) -> None:
    report.seconds = round(time.monotonic() - started, 3)
    writer.redis.hset(
        writer.keys.reconcile,
        mapping={"at": str(time.time()), "report": json.dumps(report.as_dict())},
    )
