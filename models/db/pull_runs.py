"""Layer: store. Reading and pruning the recorded IdP pull runs (``idp_pull_runs``; written by
``worker.idp.runs``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from models.db.base import utcnow
from models.db.database import Database
from models.db.observability_tables import IdpPullRun

COUNTS = (
    "upstream_users",
    "upstream_groups",
    "users_created",
    "users_updated",
    "users_deactivated",
    "groups_created",
    "groups_updated",
    "members_added",
    "members_removed",
)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="milliseconds")


def run_view(run: IdpPullRun) -> dict[str, Any]:
    duration = (run.finished_at - run.started_at).total_seconds() if run.finished_at else None
    return {
        "id": run.id,
        "connection": run.connection,
        "source": run.source,
        "dry_run": run.dry_run,
        "status": run.status,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "duration_s": duration,
        **{name: getattr(run, name) for name in COUNTS},
        "error": run.error,
        "upstream_status": run.upstream_status,
    }


def recent_runs(
    session: Session, org_id: str | None, connection: str | None, limit: int = 20
) -> list[IdpPullRun]:
    """Newest first; scoped to the organization (``None``: the operator's view)."""
    query = select(IdpPullRun).order_by(IdpPullRun.started_at.desc(), IdpPullRun.id.desc())
    if org_id is not None:
        query = query.where(IdpPullRun.org_id == org_id)
    if connection is not None:
        query = query.where(IdpPullRun.connection == connection)
    return list(session.scalars(query.limit(limit)))


def get_run(session: Session, run_id: int) -> IdpPullRun | None:
    return session.get(IdpPullRun, run_id)


def prune_runs(database: Database, retention_s: float) -> int:
    """Drop runs that started longer than ``retention_s`` ago (idempotent)."""
    cutoff = utcnow() - timedelta(seconds=retention_s)
    with database.write() as session:
        done = session.execute(delete(IdpPullRun).where(IdpPullRun.started_at < cutoff))
    return int(done.rowcount or 0)  # type: ignore[attr-defined]
