"""The README's first command path: `idsync up` on the embedded defaults (SQLite, an
embedded real redis-server, a worker), driven as a user would, end to end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.live_server import free_port


def _env(data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "REDIS_URL", "CACHE_REDIS_URL", "IDSYNC_"))
    }
    env["IDSYNC_DATA_DIR"] = str(data_dir)
    return env


def _wait_for_line(proc: subprocess.Popen[str], prefix: str, deadline: float) -> str:
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return line.strip()
        if not line and proc.poll() is not None:
            raise AssertionError(f"idsync up exited with {proc.returncode}")
    raise AssertionError(f"no line starting with {prefix!r}")


def test_idsync_up_serves_scim_and_builds_the_cache(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = _env(data)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "idsync.cli", "up", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        base_line = _wait_for_line(proc, "SCIM base URL:", deadline)
        assert base_line.endswith(f"127.0.0.1:{port}/scim/v2")
        token = _wait_for_line(proc, "Bearer token", deadline).rsplit(" ", 1)[1]
        scim = httpx.Client(
            base_url=f"http://127.0.0.1:{port}/scim/v2",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        while True:
            try:
                if scim.get("/ServiceProviderConfig").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the API did not come up"
            time.sleep(0.2)
        user = scim.post("/Users", json={"userName": "ada@example.com"})
        assert user.status_code == 201, user.text
        assert (data / "idsync.db").exists()

        key = (
            subprocess.run(
                [sys.executable, "-m", "idsync.cli", "admin-key", "create", "--org", "default"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        assert scim.get("/Users").json()["totalResults"] == 1
        admin = httpx.Client(
            base_url=f"http://127.0.0.1:{port}/api/v1",
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        org_id = admin.get("/organization").json()["id"]
        question = {
            "org": org_id,
            "user": user.json()["id"],
            "workspace": "nowhere",
            "grant": "create_sources",
        }
        # The worker that `up` started builds the cache: "unknown" turns into an answer.
        while True:
            answer = admin.post("/check", json=question).json()
            if answer["status"] != "unknown":
                break
            assert time.monotonic() < deadline + 60, "the worker never built the cache"
            time.sleep(0.25)
        assert answer["status"] == "deny" and answer["revision"] >= 1
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        subprocess.run(
            [sys.executable, "-m", "idsync.cli", "down"], env=env, timeout=60, check=False
        )
    assert not (data / "redis" / "redis.pid").exists()
