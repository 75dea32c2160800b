"""`idsync serve --workers N`: several API processes, one `/metrics` that sums them all,
with no PROMETHEUS_MULTIPROC_DIR for the operator to prepare (docs/operations.md#metrics)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.live_server import free_port

REQUESTS = 40


def _healthz_count(metrics: str) -> float:
    pattern = r"^idsync_http_requests_total\{([^}]*)\} ([0-9.e+]+)$"
    total = 0.0
    for labels, value in re.findall(pattern, metrics, flags=re.MULTILINE):
        if 'route="/healthz"' in labels and 'status="200"' in labels:
            total += float(value)
    return total


def test_two_api_processes_serve_one_sum_of_their_metrics(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "IDSYNC_", "REDIS_URL", "CACHE_REDIS_URL"))
        and k != "PROMETHEUS_MULTIPROC_DIR"
    }
    env["IDSYNC_DATA_DIR"] = str(tmp_path / "data")
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'idsync.db'}"
    idsync = [sys.executable, "-m", "idsync.cli"]
    subprocess.run([*idsync, "db", "upgrade"], env=env, check=True, timeout=120)
    port = free_port()
    server = subprocess.Popen(
        [*idsync, "serve", "--workers", "2", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        polls = 0
        deadline = time.monotonic() + 60
        while True:
            try:
                polls += 1
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                polls -= 1  # never answered: not counted by any process
            assert time.monotonic() < deadline, "idsync serve --workers 2 never answered"
            time.sleep(0.2)
        for _ in range(REQUESTS):  # a new connection each: either process may answer
            assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        # every scrape, whichever process answers it, counts the requests of both
        for _ in range(4):
            metrics = httpx.get(f"{base}/metrics", timeout=5)
            assert metrics.status_code == 200
            assert _healthz_count(metrics.text) == polls + REQUESTS
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
