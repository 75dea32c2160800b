"""Layer: worker. IdP pull runs, recorded (``idp_pull_runs``) and counted (metrics) for sync status.

A run is written as ``running`` when it starts (or, asked for by an operator, as
``queued`` first: ``queue_run``) and finished with ``ok``, ``failed`` or ``skipped``
(another run of the connection held its lease), its counts, and for a failure the reason
(credentials masked) and the upstream HTTP status. A pull that read only part of the directory is
``failed``, never a partial success: it applied nothing (``worker.idp.pull``).
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from models.db.database import Database
from models.db.observability_tables import IdpPullRun
from models.metrics import metrics
from models.redaction import redact_text

ENV_CONNECTION: Final = "env"
"""The connection configured by IDSYNC_IDP_* environment variables."""
_HTTP_STATUS = re.compile(r"\bHTTP (\d{3})\b")
ERROR_MAX: Final = 2000


@dataclass
class PullReport:
    """What one pull read upstream and changed here (its run row records it)."""

    source: str
    complete: bool = False
    error: str | None = None
    upstream_users: int = 0
    upstream_groups: int = 0
    users_created: int = 0
    users_updated: int = 0
    users_deactivated: int = 0
    groups_created: int = 0
    groups_updated: int = 0
    members_added: int = 0
    members_removed: int = 0
    dry_run: bool = False
    upstream_status: int | None = None
    transient: bool = False
    """A failure a later attempt may not have (5xx, 429, timeouts after the retries)."""
    retry_after_s: float | None = None
    """The upstream asked for this long before the next request (a long Retry-After)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_ZERO: Final = {
    "upstream_users": 0,
    "upstream_groups": 0,
    "users_created": 0,
    "users_updated": 0,
    "users_deactivated": 0,
    "groups_created": 0,
    "groups_updated": 0,
    "members_added": 0,
    "members_removed": 0,
}


def queue_run(
    database: Database, org_id: str, source: str, connection: str, *, dry_run: bool
) -> int:
    """A ``queued`` run row for a run asked for now (its task takes it over)."""
    with database.write() as session:
        return _insert(session, org_id, source, connection, "queued", dry_run)


def _insert(
    session: Session, org_id: str, source: str, connection: str, status: str, dry_run: bool
) -> int:
    run_id: int = session.execute(
        insert(IdpPullRun)
        .values(
            org_id=org_id,
            connection=connection,
            source=source,
            started_at=datetime.now(UTC),
            status=status,
            dry_run=dry_run,
            **_ZERO,
        )
        .returning(IdpPullRun.id)
    ).scalar_one()
    return run_id


def close_interrupted(database: Database, connection: str) -> int:
    """Mark the connection's ``running`` rows ``failed``: called by a run that holds the
    connection's lease, so any such row is a run whose worker died (SIGKILL, a lost
    machine) before it could record its end."""
    with database.write() as session:
        done = session.execute(
            update(IdpPullRun)
            .where(IdpPullRun.connection == connection, IdpPullRun.status == "running")
            .values(
                status="failed",
                finished_at=datetime.now(UTC),
                error="interrupted: the worker running it stopped before it ended",
            )
        )
    return int(done.rowcount or 0)  # type: ignore[attr-defined]


class PullRun:
    """One run's row: ``start`` on creation, then ``finish`` or ``fail``."""

    def __init__(
        self,
        database: Database,
        org_id: str,
        source: str,
        connection: str,
        *,
        dry_run: bool = False,
        queued: int | None = None,
    ) -> None:
        """``queued``: the id of the run's ``queued`` row, which this run takes over."""
        self.database = database
        self.connection = connection
        self.started = time.perf_counter()
        with database.write() as session:
            if queued is not None:
                session.execute(
                    update(IdpPullRun)
                    .where(IdpPullRun.id == queued)
                    .values(status="running", started_at=datetime.now(UTC))
                )
                self.id = queued
                return
            self.id = _insert(session, org_id, source, connection, "running", dry_run)

    def finish(self, report: PullReport) -> None:
        failed = not report.complete or report.error is not None
        counts = {name: getattr(report, name) for name in _ZERO}
        self._end("failed" if failed else "ok", report.error, report.upstream_status, **counts)

    def fail(self, exc: BaseException, *, plain: bool = False) -> None:
        """``plain``: the exception's text is an operator line as it is (no type name)."""
        self._end("failed", str(exc) if plain else f"{type(exc).__name__}: {exc}")

    def skip(self, reason: str) -> None:
        self._end("skipped", reason)

    def _end(
        self, status: str, error: str | None, upstream_status: int | None = None, **counts: int
    ) -> None:
        elapsed = time.perf_counter() - self.started
        m = metrics()
        m.idp_pull_runs.labels(self.connection, status).inc()
        m.idp_pull_duration.labels(self.connection).observe(elapsed)
        reason = redact_text(error)[:ERROR_MAX] if error else None
        found = _HTTP_STATUS.search(error or "")
        with self.database.write() as session:
            session.execute(
                update(IdpPullRun)
                .where(IdpPullRun.id == self.id)
                .values(
                    status=status,
                    finished_at=datetime.now(UTC),
                    error=reason,
                    upstream_status=upstream_status
                    if upstream_status is not None
                    else (int(found.group(1)) if found else None),
                    **counts,
                )
            )
