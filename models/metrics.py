"""Layer: support. Prometheus metrics of every idsync process (docs/operations.md#metrics).

Counters and histograms live here; gauges that describe shared state (freshness lag,
backlogs, rebuild progress, live workers) are computed when scraped
(``idsync.freshness``), so they are right whichever process answers.

Several processes: with ``PROMETHEUS_MULTIPROC_DIR`` set, every process (uvicorn
``--workers N``, Celery's prefork children) writes its values to files there and
``/metrics`` sums them (prometheus_client's multiprocess mode). ``idsync serve
--workers N`` and the worker set a fresh directory up when none is given
(``prepare_multiprocess_dir``). The metric objects are made on first use
(``metrics()``), after that directory is known, so the order of imports never
decides which kind of value a process keeps.

Labels are bounded: route templates (never raw paths or ids), methods, status codes,
task names, outcomes. No user, group or token id is ever a label.
"""

from __future__ import annotations

import hmac
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from models.settings import Settings

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST

HTTP_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
TASK_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 60, 300)
PULL_BUCKETS: Final = (0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


@dataclass(frozen=True)
class Metrics:
    http_requests: Counter
    http_duration: Histogram
    check_answers: Counter
    check_from_memory: Counter
    check_duration: Histogram
    task_duration: Histogram
    task_retries: Counter
    task_failures: Counter
    idp_pull_runs: Counter
    idp_pull_duration: Histogram
    scim_log_rows: Counter


def _multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


@lru_cache(maxsize=1)
def metrics() -> Metrics:
    """The process's metric objects (made once, on first use)."""
    if _multiprocess() and not getattr(values.ValueClass, "_multiprocess", False):
        # prometheus_client picks the value class when it is first imported; the
        # directory may have been set up after that (``prepare_multiprocess_dir``).
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return Metrics(
        http_requests=Counter(
            "idsync_http_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
        ),
        http_duration=Histogram(
            "idsync_http_request_duration_seconds",
            "HTTP request latency (first byte in to last byte out), by route template",
            ["route", "method"],
            buckets=HTTP_BUCKETS,
        ),
        check_answers=Counter(
            "idsync_check_answers",
            "Permission check answers of the HTTP check API, by endpoint and outcome "
            "(allow, deny, unknown; error: no answer, 4xx/5xx)",
            ["endpoint", "outcome"],
        ),
        check_from_memory=Counter(
            "idsync_check_answers_from_memory",
            "Check API answers given from process memory (no Redis round trip; "
            "IDSYNC_CHECK_LOCAL_ANSWERS), by endpoint",
            ["endpoint"],
        ),
        check_duration=Histogram(
            "idsync_check_duration_seconds",
            "Check API latency, by endpoint",
            ["endpoint"],
            buckets=HTTP_BUCKETS,
        ),
        task_duration=Histogram(
            "idsync_task_duration_seconds",
            "Celery task run time, by task name (every run, whatever its end)",
            ["task"],
            buckets=TASK_BUCKETS,
        ),
        task_retries=Counter("idsync_task_retries", "Celery task retries, by task", ["task"]),
        task_failures=Counter(
            "idsync_task_failures", "Celery task runs that failed for good, by task", ["task"]
        ),
        idp_pull_runs=Counter(
            "idsync_idp_pull_runs",
            "IdP pull runs, by connection and outcome (ok, failed)",
            ["connection", "outcome"],
        ),
        idp_pull_duration=Histogram(
            "idsync_idp_pull_duration_seconds",
            "IdP pull run time, by connection",
            ["connection"],
            buckets=PULL_BUCKETS,
        ),
        scim_log_rows=Counter(
            "idsync_scim_log_rows",
            "SCIM request log rows, by fate (written; dropped: buffer full or the "
            "database refused the batch)",
            ["fate"],
        ),
    )


def prepare_multiprocess_dir(fresh: bool = True) -> Path:
    """Make sure ``PROMETHEUS_MULTIPROC_DIR`` names a directory, before any child process
    starts: a new temporary one when unset; when set, emptied if ``fresh`` (values of an
    earlier run must not be counted again). Returns it."""
    configured = os.environ.get(MULTIPROC_ENV)
    if not configured:
        path = Path(tempfile.mkdtemp(prefix="idsync-metrics-"))
        os.environ[MULTIPROC_ENV] = str(path)
        return path
    path = Path(configured)
    if fresh and path.is_dir():
        for entry in path.glob("*.db"):
            entry.unlink(missing_ok=True)
    path.mkdir(parents=True, exist_ok=True)
    return path


def remove_multiprocess_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def registry(*extra: Collector) -> CollectorRegistry:
    """What ``/metrics`` serves: this process's metrics (or, in multiprocess mode, every
    process's, summed) and the scrape-time ``extra`` collectors."""
    metrics()
    if _multiprocess():
        reg = CollectorRegistry()
        MultiProcessCollector(reg)  # type: ignore[no-untyped-call]
    else:
        reg = CollectorRegistry()
        reg.register(_Forward(REGISTRY))
    for collector in extra:
        reg.register(collector)
    return reg


class _Forward(Collector):
    """The default registry's metrics inside a registry of our own (so scrape-time
    collectors are never registered globally)."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        return self.source.collect()


def exposition(reg: CollectorRegistry) -> bytes:
    return generate_latest(reg)


def authorized(header: str, settings: Settings) -> bool:
    """Whether an ``Authorization`` header may read /metrics (any, without a token set)."""
    expected = Settings.reveal(settings.metrics_token)
    if expected is None:
        return True
    scheme, _, presented = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode(), expected.encode()
    )
