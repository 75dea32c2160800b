"""Layer: store. Reading and pruning the SCIM request log (admin API, ``idsync scim log``, the
beat)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from models.db.database import Database
from models.db.observability_tables import ScimRequestLog

MAX_LIMIT: Final = 1000
PRUNE_BATCH: Final = 10_000
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
STATUS_CLASSES: Final = {
    "2xx": (200, 300),
    "4xx": (400, 500),
    "5xx": (500, 600),
    "error": (400, 600),
}


def parse_time(value: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 time (UTC when it names no zone), or an age back from now: ``90m``,
    ``24h``, ``2d``. Raises ValueError."""
    now = now or datetime.now(UTC)
    m = _RELATIVE.match(value.strip())
    if m:
        return now - timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    parsed = datetime.fromisoformat(value.strip())
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_status(value: str) -> tuple[int, int]:
    """``404`` -> (404, 405); ``4xx``, ``5xx``, ``2xx``, ``error`` -> a range. ValueError."""
    value = value.strip().lower()
    if value in STATUS_CLASSES:
        return STATUS_CLASSES[value]
    code = int(value)
    if not 100 <= code <= 599:
        raise ValueError(f"not an HTTP status: {value}")
    return code, code + 1


@dataclass(frozen=True)
class LogQuery:
    org_id: str
    since: datetime | None = None
    until: datetime | None = None
    status: tuple[int, int] | None = None
    user_id: str | None = None
    group_id: str | None = None
    token_id: str | None = None
    idp: str | None = None
    limit: int = 100

    def conditions(self) -> list[ColumnElement[bool]]:
        t = ScimRequestLog
        where: list[ColumnElement[bool]] = [t.org_id == self.org_id]
        if self.since is not None:
            where.append(t.at >= self.since)
        if self.until is not None:
            where.append(t.at < self.until)
        if self.status is not None:
            where += [t.status >= self.status[0], t.status < self.status[1]]
        if self.user_id is not None:
            # the user's own requests, and group writes that name the user as a member
            where.append(
                or_(
                    and_(t.resource_type == "User", t.resource_id == self.user_id),
                    and_(
                        t.resource_type.in_(("Group", None)),
                        t.body.contains(self.user_id, autoescape=True),
                    ),
                )
            )
        if self.group_id is not None:
            where += [t.resource_type == "Group", t.resource_id == self.group_id]
        if self.token_id is not None:
            where.append(t.token_id == self.token_id)
        if self.idp is not None:
            where.append(t.idp == self.idp)
        return where


def entry(row: ScimRequestLog) -> dict[str, Any]:
    """One log row as the API and the CLI show it."""
    return {
        "id": row.id,
        "at": row.at.isoformat(timespec="milliseconds"),
        "method": row.method,
        "path": row.path,
        "route": row.route,
        "query": row.query,
        "status": row.status,
        "scim_type": row.scim_type,
        "detail": row.detail,
        "duration_ms": row.duration_ms,
        "token_id": row.token_id,
        "idp": row.idp,
        "user_agent": row.user_agent,
        "request_id": row.request_id,
        "resource_type": row.resource_type,
        "resource_id": row.resource_id,
        "revision": row.revision,
        "body": row.body,
    }


def read_log(database: Database, query: LogQuery) -> list[dict[str, Any]]:
    """Matching rows, newest first, at most ``query.limit`` (capped at ``MAX_LIMIT``)."""
    limit = max(1, min(query.limit, MAX_LIMIT))
    with database.read() as session:
        rows = session.scalars(
            select(ScimRequestLog)
            .where(*query.conditions())
            .order_by(ScimRequestLog.at.desc(), ScimRequestLog.id.desc())
            .limit(limit)
        ).all()
        return [entry(r) for r in rows]


def prune(
    database: Database, *, retention_s: float, max_rows: int, now: datetime | None = None
) -> int:
    """Delete rows older than ``retention_s``, then the oldest beyond ``max_rows``, in
    batches (short transactions). Returns how many rows went."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(seconds=retention_s)
    t = ScimRequestLog
    removed = 0
    while True:
        with database.write() as session:
            ids = session.scalars(
                select(t.id).where(t.at < cutoff).order_by(t.id).limit(PRUNE_BATCH)
            ).all()
            if ids:
                session.execute(delete(t).where(t.id.in_(ids)))
        removed += len(ids)
        if len(ids) < PRUNE_BATCH:
            break
    with database.read() as session:
        excess = int(session.scalar(select(func.count()).select_from(t)) or 0) - max_rows
    while excess > 0:
        with database.write() as session:
            ids = session.scalars(select(t.id).order_by(t.id).limit(min(excess, PRUNE_BATCH))).all()
            if not ids:
                break
            session.execute(delete(t).where(t.id.in_(ids)))
        removed += len(ids)
        excess -= len(ids)
    return removed
