"""Layer: worker. IdP pull runs, recorded (``idp_pull_runs``) and counted (metrics) for sync status.

A run is written as ``running`` when it starts and finished with ``ok`` or ``failed``,
its counts, and for a failure the reason (credentials masked) and the upstream HTTP
status when the reason names one. A pull that read only part of the directory is
``failed``, never a partial success: it applied nothing (``worker.idp.pull``).
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import insert, update

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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class PullRun:
    """One run's row: ``start`` on creation, then ``finish`` or ``fail``."""

    def __init__(self, database: Database, org_id: str, source: str, connection: str) -> None:
        self.database = database
        self.connection = connection
        self.started = time.perf_counter()
        with database.write() as session:
            self.id = session.execute(
                insert(IdpPullRun)
                .values(
                    org_id=org_id,
                    connection=connection,
                    source=source,
                    started_at=datetime.now(UTC),
                    status="running",
                    upstream_users=0,
                    upstream_groups=0,
                    users_created=0,
                    users_updated=0,
                    users_deactivated=0,
                    groups_created=0,
                    groups_updated=0,
                )
                .returning(IdpPullRun.id)
            ).scalar_one()

    def finish(self, report: PullReport) -> None:
        failed = not report.complete or report.error is not None
        self._end(
            "failed" if failed else "ok",
            report.error,
            upstream_users=report.upstream_users,
            upstream_groups=report.upstream_groups,
            users_created=report.users_created,
            users_updated=report.users_updated,
            users_deactivated=report.users_deactivated,
            groups_created=report.groups_created,
            groups_updated=report.groups_updated,
        )

    def fail(self, exc: BaseException) -> None:
        self._end("failed", f"{type(exc).__name__}: {exc}")

    def _end(self, status: str, error: str | None, **counts: int) -> None:
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
                    upstream_status=int(found.group(1)) if found else None,
                    **counts,
                )
            )
