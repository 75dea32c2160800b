"""Layer: worker. The IdP connection tasks: the dispatcher the beat runs (sends one task per
due connection), the run of one connection, and the pruning of old run records.

Each connection runs as its own task (``connection_pull``, queue ``idsync.pull``) that
takes the connection's id, so one organization's slow or failing IdP only ever occupies
its own task: the lock is the connection's lease (``models.db.idp_connections``), never
a lock shared between connections, and the run has time limits. Like the bootstrap
pull, the task is acknowledged on receipt (a directory read may outlast the broker's
visibility timeout); a run killed midway is not redelivered, its lease (renewed while it
runs) lapses within two minutes and the next due slot runs it again (the pull is
idempotent and deactivates nothing after a partial read).

Errors: a database or Redis that is away (``TRANSIENT``) retries the task with backoff;
an upstream that failed transiently (5xx, 429, timeouts, after the HTTP client's own
retries) is recorded and retried up to ``UPSTREAM_RETRIES`` times; a permanent failure (a
401, a wrong URL, a credential the key does not open) is recorded and acknowledged."""

from __future__ import annotations

import logging
from typing import Any, Final

from celery import Celery, Task

from models.db.base import utcnow
from models.db.idp_connections import claim_due
from models.db.pull_runs import prune_runs
from worker.broker import (
    MAX_COUNTDOWN_S,
    ROUTES,
    TASK_CONNECTION_PULL,
    TASK_DISPATCH_CONNECTIONS,
    TASK_PRUNE_PULL_RUNS,
)
from worker.idp.connection_runs import RUN_SOFT_TIME_LIMIT_S, run_connection
from worker.runtime import runtime
from worker.tasks import TRANSIENT

log = logging.getLogger("idsync.worker")

UPSTREAM_RETRIES: Final = 2
RUN_TIME_LIMIT_S: Final = RUN_SOFT_TIME_LIMIT_S + 60


def send_connection_run(
    app: Celery, connection_id: str, *, queued: int | None = None, dry_run: bool = False
) -> None:
    app.send_task(
        TASK_CONNECTION_PULL,
        args=[connection_id],
        kwargs={"queued": queued, "dry_run": dry_run},
        queue=ROUTES[TASK_CONNECTION_PULL]["queue"],
    )


def register_connection_tasks(app: Celery, common: dict[str, Any]) -> None:
    @app.task(name=TASK_DISPATCH_CONNECTIONS, **common)
    def dispatch_connections(self: Task[Any, Any]) -> int:
        """Send a run for every enabled connection whose slot is due (each moved to its
        next slot in the same transaction, so two dispatchers never both send one)."""
        rt = runtime(app)
        with rt.database.write() as session:
            due = claim_due(session, utcnow())
        for connection_id in due:
            send_connection_run(app, connection_id)
        return len(due)

    @app.task(
        name=TASK_CONNECTION_PULL,
        **{
            **common,
            "acks_late": False,
            "reject_on_worker_lost": False,
            "autoretry_for": (),
            "max_retries": 8,
            "soft_time_limit": RUN_SOFT_TIME_LIMIT_S,
            "time_limit": RUN_TIME_LIMIT_S,
        },
    )
    def connection_pull(
        self: Task[Any, Any],
        connection_id: str,
        queued: int | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        rt = runtime(app)
        countdown = min(MAX_COUNTDOWN_S, 2.0 ** (self.request.retries or 0))
        try:
            outcome = run_connection(
                rt.database, rt.settings, connection_id, dry_run=dry_run, queued=queued
            )
        except TRANSIENT as exc:
            raise self.retry(exc=exc, countdown=countdown) from exc
        if (
            outcome.status == "failed"
            and outcome.transient
            and outcome.deferred_s is None  # the dispatcher runs it once the upstream allows
            and queued is None
            and (self.request.retries or 0) < UPSTREAM_RETRIES
        ):
            log.info(
                "idp connection %s: upstream failed transiently, retrying in %.0f s",
                connection_id,
                countdown,
            )
            raise self.retry(countdown=countdown)
        return outcome.as_dict()

    @app.task(name=TASK_PRUNE_PULL_RUNS, **common)
    def prune_pull_runs(self: Task[Any, Any]) -> int:
        """Drop run records older than ``IDSYNC_IDP_RUN_RETENTION_DAYS`` (idempotent)."""
        rt = runtime(app)
        removed = prune_runs(rt.database, rt.settings.idp_run_retention_days * 86_400)
        log.info("idp pull runs pruned", extra={"rows": removed})
        return removed

    _ = (dispatch_connections, connection_pull, prune_pull_runs)
