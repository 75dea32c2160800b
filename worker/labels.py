"""Layer: worker. Registered resource labels in the cache (contract §3, legacy label
conditions), and the organization's workspace set (a check naming a workspace not in it is
an error), written together.

The check client fills a legacy resource's labels from the generation's labels hash
when the caller passes none, in the same round trip as the profile (so cache answers
equal ``AccessModel`` answers, which use the registered resource list). This module
writes that hash from SQL:

- a rebuild writes it into the generation being built, at the plan's revision;
- the outbox catch-up rewrites it when a ``config.resource.*`` (or workspace
  deletion) change passes, before the cursor moves past that change, so the
  watermark never claims a label change the hash does not reflect yet;
- reconcile compares it with SQL and repairs it.

Every write replaces the whole hash atomically and is guarded by the snapshot
revision (``#rev``): an older snapshot never overwrites a newer one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.cache.fallback import org_revision, snapshot
from models.cache.layout import LABELS_REV, WORKSPACES_WRITTEN, encode_labels, label_field
from models.cache.writer import CacheWriter, LabelsResult
from models.db.config_tables import ConfigWorkspace, RegisteredResourceRow
from models.db.database import Database


def load_labels(session: Session, org_id: str) -> dict[str, str]:
    """``{label_field: encode_labels}`` of every registered resource of ``org_id``."""
    rows = session.execute(
        select(
            RegisteredResourceRow.workspace_id,
            RegisteredResourceRow.type,
            RegisteredResourceRow.resource_id,
            RegisteredResourceRow.labels,
        ).where(RegisteredResourceRow.org_id == org_id)
    )
    return {
        label_field(ws, rtype, rid): encode_labels(
            (str(k), str(v)) for k, v in (labels or {}).items()
        )
        for ws, rtype, rid, labels in rows
    }


def load_workspaces(session: Session, org_id: str) -> set[str]:
    """Every workspace id of ``org_id``."""
    rows = session.scalars(select(ConfigWorkspace.id).where(ConfigWorkspace.org_id == org_id))
    return {str(ws) for ws in rows}


def sync_labels(
    database: Database, writer: CacheWriter, org_id: str, *, building: int | None = None
) -> tuple[int, LabelsResult]:
    """Rewrite the labels hash and the workspace set from one SQL snapshot ->
    (revision, result); ``building``: only into that generation being built."""
    with snapshot(database) as session:
        revision = org_revision(session, org_id)
        entries = load_labels(session, org_id)
        workspaces = load_workspaces(session, org_id)
    return revision, writer.put_labels(revision, entries, workspaces, building=building)


@dataclass
class LabelDiff:
    revision: int = 0
    missing: int = 0
    wrong: int = 0
    extra: int = 0
    fields: list[str] = field(default_factory=list)

    @property
    def drift(self) -> int:
        return self.missing + self.wrong + self.extra


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def diff_labels(database: Database, writer: CacheWriter, org_id: str, gen: int) -> LabelDiff:
    """What the serving generation's labels hash and workspace set lack or hold wrongly
    vs SQL (written at a newer revision than the snapshot is not drift; a workspace
    missing or extra counts as a field, ``ws:<id>``)."""
    with snapshot(database) as session:
        revision = org_revision(session, org_id)
        wanted = load_labels(session, org_id)
        wanted_ws = load_workspaces(session, org_id)
    raw = writer.redis.hgetall(writer.keys.labels(gen))
    have = {_s(k): _s(v) for k, v in raw.items()}
    diff = LabelDiff(revision)
    if int(have.pop(LABELS_REV, "-1")) > revision:
        return diff
    have_ws = {_s(m) for m in writer.redis.smembers(writer.keys.workspaces(gen))}
    have_ws.discard(WORKSPACES_WRITTEN)
    for ws in sorted(wanted_ws - have_ws):
        diff.missing += 1
        diff.fields.append(f"ws:{ws}")
    for ws in sorted(have_ws - wanted_ws):
        diff.extra += 1
        diff.fields.append(f"ws:{ws}")
    for f, v in wanted.items():
        if f not in have:
            diff.missing += 1
            diff.fields.append(f)
        elif have[f] != v:
            diff.wrong += 1
            diff.fields.append(f)
    extra = sorted(set(have) - set(wanted))
    diff.extra += len(extra)
    diff.fields.extend(extra)
    return diff
