"""Layer: worker. The worker's Prometheus metrics: task signals, and ``/metrics`` on its own port.

Every task run is timed, and its retries and final failures counted, by task name, from
Celery's signals (in the pool process that ran it). The worker's main process serves
``/metrics`` on ``IDSYNC_WORKER_METRICS_PORT`` (unset: not served) from a Celery
bootstep, like the heartbeat. Prefork children are separate processes, so the step
sets up prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, a fresh
directory unless one is given) before the pool starts, and the endpoint sums every
child's values.
"""

from __future__ import annotations

import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from celery import Celery, bootsteps
from celery.signals import task_failure, task_postrun, task_prerun, task_retry

from models.metrics import (
    CONTENT_TYPE,
    authorized,
    exposition,
    metrics,
    prepare_multiprocess_dir,
    registry,
)
from models.settings import Settings

log = logging.getLogger("idsync.worker.metrics")

_started: dict[str, float] = {}


def _name(sender: Any) -> str:
    return str(getattr(sender, "name", None) or "unknown")


def _prerun(task_id: str | None = None, **_: Any) -> None:
    if task_id is not None:
        _started[task_id] = time.perf_counter()


def _postrun(task_id: str | None = None, sender: Any = None, **_: Any) -> None:
    began = _started.pop(task_id, None) if task_id is not None else None
    if began is not None:
        metrics().task_duration.labels(_name(sender)).observe(time.perf_counter() - began)


def _retry(sender: Any = None, **_: Any) -> None:
    metrics().task_retries.labels(_name(sender)).inc()


def _failure(sender: Any = None, **_: Any) -> None:
    metrics().task_failures.labels(_name(sender)).inc()


def install_task_metrics() -> None:
    """Connect the task signals (idempotent: Celery keeps one receiver per function)."""
    task_prerun.connect(_prerun, weak=False)
    task_postrun.connect(_postrun, weak=False)
    task_retry.connect(_retry, weak=False)
    task_failure.connect(_failure, weak=False)


def _handler(settings: Settings) -> type[BaseHTTPRequestHandler]:
    class MetricsHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self._answer(404, b"not found\n", "text/plain")
            elif not authorized(self.headers.get("authorization", ""), settings):
                self._answer(401, b"a valid metrics bearer token is required\n", "text/plain")
            else:
                self._answer(200, exposition(registry()), CONTENT_TYPE)

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # scrapes are not worth a log line each

    return MetricsHandler


class MetricsServer:
    """``/metrics`` over HTTP from a daemon thread."""

    def __init__(self, settings: Settings, host: str, port: int) -> None:
        self.server = ThreadingHTTPServer((host, port), _handler(settings))
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="idsync-metrics", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class MetricsStep(bootsteps.StartStopStep):
    """Worker bootstep: ``app.steps["worker"].add(MetricsStep)``."""

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.server: MetricsServer | None = None
        settings: Settings = parent.app.conf.idsync_settings
        self.port = settings.worker_metrics_port
        if self.port is not None:
            prepare_multiprocess_dir()  # before the pool forks its children

    def start(self, parent: Any) -> None:
        if self.port is None:
            return
        settings: Settings = parent.app.conf.idsync_settings
        try:
            self.server = MetricsServer(settings, settings.worker_metrics_host, self.port)
        except OSError as exc:
            log.warning("worker /metrics not served on port %s: %s", self.port, exc)
            return
        self.server.start()
        log.info("worker metrics on http://%s:%s/metrics", settings.worker_metrics_host, self.port)

    def stop(self, parent: Any) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def install(app: Celery) -> None:
    install_task_metrics()
    app.steps["worker"].add(MetricsStep)
