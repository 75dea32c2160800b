"""The README's first command path: `idsync up` on the embedded defaults (SQLite, an
embedded real redis-server, a worker), driven as a user would, end to end."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.live_server import free_port
from tests.support.processes import processes_with_env


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
        # The banner prints once the API is listening: no retry needed.
        assert scim.get("/ServiceProviderConfig").status_code == 200
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
        made = admin.post("/workspaces", json={"id": "mkt", "name": "Marketing"})
        assert made.status_code == 201, made.text
        question = {
            "org": org_id,
            "user": user.json()["id"],
            "workspace": "mkt",  # Ada holds no role there
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
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        assert {p["status"] for p in ready.json()["parts"].values()} == {"ok"}
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
    # nothing `up` started (API, worker and its pool, embedded Redis) is left running
    assert processes_with_env("IDSYNC_DATA_DIR", str(data)) == []


def _start_up(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "idsync.cli", "up", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop_up(proc: subprocess.Popen[str], env: dict[str, str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    subprocess.run([sys.executable, "-m", "idsync.cli", "down"], env=env, timeout=60, check=False)


def _readyz(port: int) -> tuple[int, dict[str, dict[str, str]]]:
    r = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
    return r.status_code, r.json()["parts"]


def _worker_pid(parts: dict[str, dict[str, str]]) -> int:
    reason = parts["up.worker"]["reason"]  # "running (pid 123, restarts 0)"
    return int(reason.split("pid ", 1)[1].split(",", 1)[0])


def test_a_killed_worker_is_restarted_and_readyz_shows_it_while_down(tmp_path: Path) -> None:
    env = _env(tmp_path / "data")
    port = free_port()
    proc = _start_up(env, port)
    try:
        deadline = time.monotonic() + 90
        _wait_for_line(proc, "SCIM base URL:", deadline)
        while True:
            code, parts = _readyz(port)
            if code == 200:
                break
            assert time.monotonic() < deadline, parts
            time.sleep(0.2)
        first = _worker_pid(parts)
        os.kill(first, signal.SIGKILL)
        # Visible at once: up's own part fails while the worker is down.
        seen_down = False
        while time.monotonic() < deadline:
            code, parts = _readyz(port)
            if parts["up.worker"]["status"] == "fail":
                assert code == 503
                assert "killed by SIGKILL" in parts["up.worker"]["reason"]
                seen_down = True
                break
            time.sleep(0.05)
        assert seen_down, "readyz never showed the dead worker"
        while True:  # restarted, with a new pid, and ready again
            code, parts = _readyz(port)
            if code == 200 and _worker_pid(parts) != first:
                break
            assert time.monotonic() < deadline, parts
            time.sleep(0.2)
        assert "restarts 1" in parts["up.worker"]["reason"]
    finally:
        _stop_up(proc, env)
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert "idsync up: worker was killed by SIGKILL" in err
    assert proc.returncode == 0


def test_a_worker_that_cannot_start_stops_up_with_one_line(tmp_path: Path) -> None:
    """The first user's crash: the worker cannot import a module the API never needs.
    `up` gives up after two quick exits, exit 1, naming the cause."""
    shadow = tmp_path / "shadow" / "packaging"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'packaging'\", name='packaging')\n"
    )
    env = _env(tmp_path / "data")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(shadow.parent), *filter(None, [env.get("PYTHONPATH")])]
    )
    port = free_port()
    proc = _start_up(env, port)
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        _stop_up(proc, env)
    assert proc.returncode == 1
    last = [line for line in err.splitlines() if line.startswith("idsync up:")][-1]
    assert last == (
        "idsync up: worker cannot start: it exited with code 1 within 10 s of starting, "
        "twice (ModuleNotFoundError: No module named 'packaging')"
    )
    assert "SCIM base URL" in out  # the API itself was up meanwhile


def test_a_port_in_use_is_one_line_naming_the_port(tmp_path: Path) -> None:
    env = _env(tmp_path / "data")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "idsync.cli", "up", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"Error: port {port} on 127.0.0.1 is in use: stop what holds it, or choose another "
        "with --port"
    ]
    assert not (tmp_path / "data" / "redis").exists()  # nothing was started
