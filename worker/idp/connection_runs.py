"""Layer: worker. Running one connection: take its lease (its own lock, nothing shared with
other connections), open its upstream, pull (or dry-run), record the run, let go of the
lease. ``pull_from_settings`` runs the IDSYNC_IDP_* bootstrap connection (``env``).

A credential that cannot be decrypted (``IDSYNC_SECRET_KEY`` missing, malformed, or not
the one it was written with) fails the run with one operator line naming the cause; the
secret itself never reaches a log line, a run row or an exception text."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

from models.db.base import utcnow
from models.db.config_errors import NotFoundError
from models.db.database import Database
from models.db.idp_connections import defer_run, drop_lease, get_connection, take_lease
from models.db.observability_tables import IdpPullRun
from models.redaction import redact_text
from models.secret_box import SecretKeyError
from models.settings import Settings
from worker.idp.lease_keeper import LeaseKeeper
from worker.idp.pull import pull
from worker.idp.runs import ENV_CONNECTION, PullReport, PullRun, close_interrupted
from worker.idp.sources import Source
from worker.idp.upstreams import Upstream, open_source, source_from_settings, upstream_of

log = logging.getLogger("idsync.idp")

RUN_SOFT_TIME_LIMIT_S: Final = 3600
LEASE_S: Final = 120.0
LEASE_RENEW_S: Final = 30.0
"""A run holds its connection's lease for ``LEASE_S``, renewed every ``LEASE_RENEW_S`` while
it goes on (``LeaseKeeper``): a run killed midway frees its connection within two
minutes."""


@dataclass
class RunOutcome:
    """How a run of one connection ended (the task's result, the CLI's output)."""

    connection: str
    status: str  # ok, failed, skipped
    run_id: int | None = None
    report: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    transient: bool = False
    deferred_s: float | None = None
    """The upstream asked for this long (a Retry-After longer than the client waits in
    place): the connection's next run was moved past it, and the task does not retry."""

    def as_dict(self) -> dict[str, Any]:
        """The task's result (Celery logs it): the error text with credentials masked."""
        return {
            **self.report,
            "connection": self.connection,
            "status": self.status,
            "run_id": self.run_id,
            "error": redact_text(self.error) if self.error else None,
        }


def _finished(database: Database, run_id: int) -> bool:
    with database.read() as session:
        run = session.get(IdpPullRun, run_id)
        return run is None or run.status not in ("queued", "running")


def run_connection(
    database: Database,
    settings: Settings,
    connection_id: str,
    *,
    dry_run: bool = False,
    queued: int | None = None,
) -> RunOutcome:
    """Run one stored connection now. ``queued``: the run row an operator's request made
    (a redelivered request whose run already ended does nothing)."""
    if queued is not None and _finished(database, queued):
        return RunOutcome(connection_id, "skipped", queued, error="this run has already ended")
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    with database.write() as session:
        try:
            conn = get_connection(session, None, connection_id)
        except NotFoundError:
            return RunOutcome(connection_id, "skipped", queued, error="no such connection")
        leased = take_lease(session, connection_id, owner, LEASE_S)
        org_id, kind, deactivate = conn.org_id, conn.kind, conn.deactivate_missing
        upstream: Upstream | None = None
        problem: SecretKeyError | None = None
        try:
            # the key is needed only to open a stored credential
            box = settings.secret_box() if conn.secret_enc is not None else None
            upstream = upstream_of(conn, box, allow_private=settings.outbound_allow_private)
        except SecretKeyError as exc:
            problem = exc
    if not leased:
        busy = "another run of this connection is in progress"
        if queued is not None:  # an operator asked: the run row says why nothing ran
            PullRun(database, org_id, kind, connection_id, queued=queued).skip(busy)
        return RunOutcome(connection_id, "skipped", queued, error=busy)
    try:
        with LeaseKeeper(database, connection_id, owner, LEASE_S, LEASE_RENEW_S):
            close_interrupted(database, connection_id)  # the lease is ours: those runs died
            run = PullRun(database, org_id, kind, connection_id, dry_run=dry_run, queued=queued)
            if upstream is None:
                assert problem is not None
                log.error("idp connection %s: %s", connection_id, problem)
                run.fail(problem, plain=True)
                return RunOutcome(connection_id, "failed", run.id, error=str(problem))
            outcome = _pull_and_record(
                database,
                run,
                open_source(upstream),
                org_id=org_id,
                deactivate=deactivate,
                dry_run=dry_run,
            )
            if outcome.deferred_s is not None:
                until = utcnow() + timedelta(seconds=outcome.deferred_s)
                with database.write() as session:
                    defer_run(session, connection_id, until)
                log.info(
                    "idp connection %s: the upstream asked for %.0f s; next run deferred",
                    connection_id,
                    outcome.deferred_s,
                )
            return outcome
    finally:
        with database.write() as session:
            drop_lease(session, connection_id, owner)


def _pull_and_record(
    database: Database,
    run: PullRun,
    upstream_source: tuple[Source, Callable[[], None]],
    *,
    org_id: str,
    deactivate: bool,
    dry_run: bool,
) -> RunOutcome:
    source, close = upstream_source
    try:
        report: PullReport = pull(
            database, org_id, source, deactivate_missing=deactivate, dry_run=dry_run
        )
    except BaseException as exc:
        run.fail(exc)
        raise
    finally:
        close()
    run.finish(report)
    status = "ok" if report.complete and report.error is None else "failed"
    shown = {**report.as_dict(), "error": redact_text(report.error) if report.error else None}
    log.info("idp pull", extra={"connection": run.connection, **shown})
    return RunOutcome(
        run.connection,
        status,
        run.id,
        report.as_dict(),
        error=report.error,
        transient=report.transient,
        deferred_s=report.retry_after_s,
    )


def pull_from_settings(settings: Settings, database: Database) -> dict[str, Any]:
    """The IDSYNC_IDP_* bootstrap connection (``env``), run once."""
    if not settings.idp_configured():
        return {"skipped": "no IdP pull configured (IDSYNC_IDP_KIND, IDSYNC_IDP_ORG, …)"}
    assert settings.idp_org is not None
    run = PullRun(database, settings.idp_org, settings.idp_kind, ENV_CONNECTION)
    outcome = _pull_and_record(
        database,
        run,
        source_from_settings(settings),
        org_id=settings.idp_org,
        deactivate=settings.idp_deactivate_missing,
        dry_run=False,
    )
    return outcome.report
