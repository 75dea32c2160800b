"""The processes a test starts: running a command as a user would (``captured``), finding
them by a marker in their environment, and stopping a process group."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path


def captured(
    command: Sequence[str | Path],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` to its end (at most ``timeout`` s) with ``stdin``, its output
    captured as text; a failure is the caller's to assert (its stderr says why)."""
    return subprocess.run(
        command,
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process's group (started with ``start_new_session=True``), SIGKILL it
    when it has not exited within 15 s; nothing when the process has exited already."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def processes_with_env(name: str, value: str) -> list[str]:
    """``pid: cmdline`` of every live process (not a zombie) whose environment has
    ``name=value``. Children inherit the environment, so a unique value set for a
    command finds everything that command started."""
    wanted = f"{name}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if wanted in environ and state != "Z":
            found.append(f"{entry.name}: {cmdline.strip()}")
    return found
