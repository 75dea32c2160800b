"""Layer: app. How an admin request reaches the worker: the cache Redis (job state, through the
change hook's client: 1 s timeouts) and a Celery sender with bounded timeouts.

A server without Redis (no ``REDIS_URL`` / ``CACHE_REDIS_URL``) has no worker to hand
work to: ``WorkerLink.client`` is then None and the routes that need it answer 503."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any, Final

from celery import Celery
from fastapi import Depends, HTTPException, Request
from kombu.exceptions import OperationalError as KombuOperationalError

from models.settings import Settings
from worker.broker import ROUTES, TASK_RULES_APPLY, sender_app
from worker.rule_jobs import Client

log = logging.getLogger("idsync.api")

SEND_TIMEOUT_S: Final = 1.0
"""Connect and read timeouts of the sender's broker connection; with one retry, a send
to a broker that does not answer fails within a few seconds (503), never hangs."""
SEND_ERRORS: Final = (KombuOperationalError, OSError)
"""What publishing raises when the broker cannot take the message."""
BROKER_RETRY_AFTER_S: Final = 5
SEND_RETRY_POLICY: Final = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}


def _sender(settings: Settings, broker: str) -> Celery:
    app = sender_app(settings, broker)
    options = dict(app.conf.broker_transport_options or {})
    options.update(socket_timeout=SEND_TIMEOUT_S, socket_connect_timeout=SEND_TIMEOUT_S)
    app.conf.broker_transport_options = options
    return app


def no_worker() -> HTTPException:
    """503: this server has no Redis, so no worker to run the job."""
    return HTTPException(
        503, "no worker to run this: the server has no Redis (set REDIS_URL) and no worker"
    )


def broker_unavailable() -> HTTPException:
    return HTTPException(
        503,
        "the worker's queue (the Redis broker) did not take the job; nothing was started, "
        "retry later",
        headers={"Retry-After": str(BROKER_RETRY_AFTER_S)},
    )


@dataclass
class WorkerLink:
    client: Client | None
    """The cache's Redis client, None when this server has no Redis."""
    celery: Celery | None

    def send_rules_apply(self, org_id: str, job_id: str) -> None:
        assert self.celery is not None
        self.celery.send_task(
            TASK_RULES_APPLY,
            args=[org_id, job_id],
            queue=ROUTES[TASK_RULES_APPLY]["queue"],
            retry=True,
            retry_policy=SEND_RETRY_POLICY,
        )


def worker_link(request: Request) -> WorkerLink:
    state: Any = request.app.state
    hook = getattr(state, "change_hook", None)
    if hook is None:
        return WorkerLink(None, None)
    sender: Celery | None = getattr(state, "rules_sender", None)
    if sender is None:
        settings: Settings = state.settings
        url = settings.resolved_cache_redis_url()
        assert url is not None  # the hook exists only with a Redis
        sender = state.rules_sender = _sender(settings, settings.redis_url or url)
    return WorkerLink(hook.redis, sender)


Worker = Annotated[WorkerLink, Depends(worker_link)]
