"""A real Celery worker (subprocess: `celery -A worker.app worker`) on the real Redis
broker, against the test run's PostgreSQL database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from models.db.database import Database
from models.settings import Settings
from tests.conftest import REDIS_TEST_URL
from tests.support.processes import stop_group
from tests.support.throwaway import flushed_redis
from worker.broker import ALL_QUEUES

ROOT = Path(__file__).resolve().parents[3]
_base = REDIS_TEST_URL.rsplit("/", 1)[0]
BROKER_URL = os.environ.get("IDSYNC_TEST_BROKER_URL", f"{_base}/12")
CACHE_URL = os.environ.get("IDSYNC_TEST_CACHE_URL", f"{_base}/13")


def wait_until(pred: Callable[[], Any], timeout: float = 30.0, every: float = 0.02) -> Any:
    """Poll ``pred`` until truthy (behaviour, not speed: the bound only avoids hanging)."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(every)


class WorkerProcess:
    def __init__(self, database_url: str, log_dir: Path) -> None:
        self.database_url = database_url
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.database_url,
            REDIS_URL=BROKER_URL,
            CACHE_REDIS_URL=CACHE_URL,
            PYTHONPATH=str(ROOT),
            IDSYNC_LOG_LEVEL="INFO",
            # the fake IdPs and webhook receivers of these tests listen on localhost
            IDSYNC_OUTBOUND_ALLOW_PRIVATE="true",
        )
        env.update(extra)
        return env

    def start(self, concurrency: int = 2, **extra: str) -> subprocess.Popen[bytes]:
        n = len(self.procs)
        log = open(self.log_dir / f"worker-{n}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "worker.app",
                "worker",
                "-c",
                str(concurrency),
                "-Q",
                ",".join(ALL_QUEUES),
                "--loglevel",
                "INFO",
                "-n",
                f"test{n}-{os.getpid()}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=self.env(**extra),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        wait_until(lambda: b"ready" in (self.log_dir / f"worker-{n}.log").read_bytes(), 60)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the whole worker (main process and pool children)."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.procs:
            stop_group(proc)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("*.log")))


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    with flushed_redis(BROKER_URL) as client:
        yield client


@pytest.fixture
def cache() -> Iterator[redis.Redis]:
    with flushed_redis(CACHE_URL) as client:
        yield client


@pytest.fixture
def settings() -> Settings:
    return Settings(REDIS_URL=BROKER_URL, CACHE_REDIS_URL=CACHE_URL)


@pytest.fixture
def workers(
    pg_database: Database, pg_url: str, broker: redis.Redis, cache: redis.Redis, tmp_path: Path
) -> Iterator[WorkerProcess]:
    wp = WorkerProcess(pg_url, tmp_path)
    try:
        yield wp
    finally:
        wp.stop_all()
        if os.environ.get("IDSYNC_TEST_SHOW_WORKER_LOGS"):
            print(wp.logs())
