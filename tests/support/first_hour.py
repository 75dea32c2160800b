"""Driving an installed idsync as a first user would (shared by the install tests):
SCIM users and a group, a role bound with `idsync apply`, `allow` from the check API,
the member PATCHed out, `deny` within a second; then Ctrl-C, `idsync down`, and nothing
it started left running."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.processes import captured, processes_with_env

ROOT = Path(__file__).resolve().parents[2]

FRESHNESS_S = 1.0
"""The issue's bar: a check answers within a second of the SCIM write."""

ACCESS_FILE = """\
organization: default
workspaces:
  - {id: marketing, name: Marketing}
bindings:
  roles:
    - {group: Editors, workspace: marketing, role: editor}
"""


def project_copy(dest: Path) -> Path:
    """What a clone has: tracked files, plus new files not ignored (this tree's work in
    progress); no .venv, no .idsync, no caches."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in filter(None, listed):
        rel = raw.decode()
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def user_env(marker: str) -> dict[str, str]:
    """A user's shell: none of the test run's settings, no dev venv on PATH."""
    dev_bin = str(Path(sys.prefix) / "bin")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("IDSYNC_", "DATABASE_URL", "REDIS_URL", "CACHE_REDIS_URL"))
        and k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    }
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != dev_bin)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["IDSYNC_E2E_MARKER"] = marker  # finds every process the command started
    return env


@dataclass
class Running:
    proc: subprocess.Popen[str]
    port: int
    token: str
    idsync: Path
    cwd: Path
    env: dict[str, str]


def wait_for_banner(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("Bearer token"):
            return line.strip().rsplit(" ", 1)[1]
        if not line and proc.poll() is not None:
            raise AssertionError(f"the first command exited with {proc.returncode}")
    raise AssertionError("no banner")


def _idsync(run: Running, *args: str, stdin: str | None = None) -> str:
    result = captured([run.idsync, *args], cwd=run.cwd, env=run.env, timeout=120, stdin=stdin)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _stop(run: Running) -> None:
    if run.proc.poll() is None:
        run.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            run.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            run.proc.kill()
            run.proc.wait()
    subprocess.run([str(run.idsync), "down"], cwd=run.cwd, env=run.env, timeout=60, check=False)


def _wait_status(check: httpx.Client, question: dict[str, str], want: str) -> float:
    """Seconds until the check answers ``want`` (fails past FRESHNESS_S)."""
    started = time.monotonic()
    while True:
        answer = check.post("/check", json=question)
        assert answer.status_code == 200, answer.text
        status = answer.json()["status"]
        elapsed = time.monotonic() - started
        if status == want:
            return elapsed
        assert elapsed < FRESHNESS_S, f"still {status!r} after {elapsed:.2f}s (want {want!r})"
        time.sleep(0.02)


def drive(run: Running, workdir: Path) -> None:
    base = f"http://127.0.0.1:{run.port}"
    scim = httpx.Client(
        base_url=f"{base}/scim/v2",
        headers={"Authorization": f"Bearer {run.token}", "Content-Type": "application/scim+json"},
        timeout=10,
    )
    # The banner prints once the API listens: the first request just works.
    ada = scim.post("/Users", json={"userName": "ann@example.com"})
    assert ada.status_code == 201, ada.text
    bob = scim.post("/Users", json={"userName": "bob@example.com"})
    assert bob.status_code == 201, bob.text
    group = scim.post(
        "/Groups", json={"displayName": "Editors", "members": [{"value": ada.json()["id"]}]}
    )
    assert group.status_code == 201, group.text

    access = workdir / "access.yaml"
    access.write_text(ACCESS_FILE)
    applied = _idsync(run, "apply", str(access))
    assert "+ workspace marketing" in applied
    key = _idsync(run, "admin-key", "create", "--org", "default").strip().splitlines()[-1]
    check = httpx.Client(
        base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    org = check.get("/organization").json()["id"]

    def question(user: httpx.Response) -> dict[str, str]:
        return {
            "org": org,
            "user": user.json()["id"],
            "workspace": "marketing",
            "grant": "create_sources",
        }

    # The worker built the cache and applied the binding: a real answer, not "unknown".
    deadline = time.monotonic() + 60
    while check.post("/check", json=question(ada)).json()["status"] != "allow":
        assert time.monotonic() < deadline, check.post("/check", json=question(ada)).json()
        time.sleep(0.1)
    assert check.post("/check", json=question(bob)).json()["status"] == "deny"

    removed = scim.patch(
        f"/Groups/{group.json()['id']}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "remove", "path": f'members[value eq "{ada.json()["id"]}"]'}],
        },
    )
    assert removed.status_code in (200, 204), removed.text
    _wait_status(check, question(ada), "deny")

    added = scim.patch(
        f"/Groups/{group.json()['id']}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [
                {"op": "add", "path": "members", "value": [{"value": bob.json()["id"]}]}
            ],
        },
    )
    assert added.status_code in (200, 204), added.text
    _wait_status(check, question(bob), "allow")

    ready = httpx.get(f"{base}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text


def stop_and_check_nothing_left(run: Running, marker: str, workdir: Path) -> None:
    _stop(run)
    log = (workdir / "stderr.log").read_text(errors="replace").splitlines()
    print("\n".join(log[-60:]))  # shown by pytest when the test failed
    left = processes_with_env("IDSYNC_E2E_MARKER", marker)
    assert left == [], f"still running after `idsync down`: {left}"
