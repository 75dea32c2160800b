"""Layer: worker. Housekeeping tasks: pruning the SCIM request log (by age and by count)."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, Task

from models.db.request_log import prune
from worker.broker import TASK_PRUNE_SCIM_LOG
from worker.runtime import runtime

log = logging.getLogger("idsync.worker")


def register_maintenance(app: Celery, common: dict[str, Any]) -> None:
    @app.task(name=TASK_PRUNE_SCIM_LOG, **common)
    def prune_scim_log(self: Task[Any, Any]) -> int:
        """Drop request log rows past ``IDSYNC_SCIM_LOG_RETENTION_DAYS`` and the oldest
        beyond ``IDSYNC_SCIM_LOG_MAX_ROWS`` (idempotent; queue idsync.reconcile)."""
        rt = runtime(app)
        removed = prune(
            rt.database,
            retention_s=rt.settings.scim_log_retention_days * 86_400,
            max_rows=rt.settings.scim_log_max_rows,
        )
        log.info("scim log pruned", extra={"rows": removed})
        return removed

    _ = prune_scim_log
