"""What a user installs is what the tests prove: idsync built from the same files the
Dockerfile copies, installed (not editable) into a fresh virtualenv with only the
dependencies pyproject.toml declares, migrates a database from its packaged migrations,
ships the /docs assets, starts `idsync worker` and `idsync beat` (the image's worker
and beat services) against a real Redis, and runs the first hour end to end under
`idsync up` from a directory without the sources."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REDIS_TEST_URL
from tests.support.dockerfile import copies, stages
from tests.support.first_hour import (
    Running,
    drive,
    stop_and_check_nothing_left,
    user_env,
    wait_for_banner,
)
from tests.support.live_server import free_port
from tests.support.processes import captured

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a fresh virtualenv holding idsync as `pip install` makes it."""
    base = tmp_path_factory.mktemp("installed")
    source = base / "src"
    source.mkdir()
    # The build stage's COPY lines, so the package is built from what the image is.
    for paths, _destination in copies(stages()[0]):
        for path in paths:
            if (ROOT / path).is_dir():
                shutil.copytree(
                    ROOT / path, source / path, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                shutil.copy2(ROOT / path, source / path)
    venv.create(base / "venv", with_pip=True)
    bin_dir = base / "venv" / "bin"
    pip = subprocess.run(
        [
            bin_dir / "python",
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            source,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert pip.returncode == 0, pip.stderr[-4000:]
    return bin_dir


def _env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "REDIS_URL", "CACHE_REDIS_URL", "IDSYNC_"))
        and k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    env["IDSYNC_DATA_DIR"] = str(tmp_path / "data")
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'idsync.db'}"
    env["REDIS_URL"] = REDIS_TEST_URL
    return env


def _upgrade(installed: Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``idsync db upgrade`` of the installed package, which must succeed."""
    upgraded = captured([installed / "idsync", "db", "upgrade"], cwd=cwd, env=env, timeout=120)
    assert upgraded.returncode == 0, upgraded.stderr[-4000:]
    return upgraded


def test_the_installed_package_has_its_data_and_only_declared_dependencies(
    installed: Path, tmp_path: Path
) -> None:
    env = _env(tmp_path)
    # pytest: a dev extra, so it must be missing
    probe = captured(
        [installed / "python", "-c", "import idsync, pytest"], cwd=tmp_path, env=env, timeout=60
    )
    assert "No module named 'pytest'" in probe.stderr, probe.stderr
    where = captured(
        [
            installed / "python",
            "-c",
            "import idsync, sys; from idsync.api_docs import assets_dir; "
            "print(idsync.__file__); print(assets_dir())",
        ],
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    assert where.returncode == 0, where.stderr
    package, assets = where.stdout.splitlines()
    assert not package.startswith(str(ROOT)) and "site-packages" in package
    assert (Path(assets) / "swagger-ui-bundle.js").is_file()
    console = Path(package).parent / "console"  # the web console's templates and assets
    for name in ("templates/base.html", "static/htmx.min.js", "static/htmx.LICENSE"):
        assert (console / name).is_file(), name
    upgraded = _upgrade(installed, tmp_path, env)
    assert "database at revision" in upgraded.stdout


@pytest.fixture
def started(installed: Path, tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for proc in processes:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _wait_for(proc: subprocess.Popen[str], needle: str, seconds: float) -> list[str]:
    assert proc.stderr is not None
    os.set_blocking(proc.stderr.fileno(), False)
    seen: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if line:
            seen.append(line)
            if needle in line:
                return seen
            continue
        if proc.poll() is not None:
            seen += proc.stderr.readlines()
            raise AssertionError(f"exited with {proc.returncode}:\n{''.join(seen)[-4000:]}")
        time.sleep(0.05)
    raise AssertionError(f"no {needle!r} within {seconds} s:\n{''.join(seen)[-4000:]}")


@pytest.mark.redis
@pytest.mark.worker
def test_worker_and_beat_start_from_the_installed_package(
    installed: Path, tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    env = _env(tmp_path)
    _upgrade(installed, tmp_path, env)
    for command, ready in ((["worker", "-c", "1"], " ready."), (["beat"], "beat: Starting")):
        proc = subprocess.Popen(
            [installed / "idsync", *command],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        _wait_for(proc, ready, 90)
        proc.terminate()
        assert proc.wait(timeout=60) == 0, command


def test_the_first_hour_on_the_installed_package(installed: Path, tmp_path: Path) -> None:
    """`idsync up` from the installed package, run where no source tree is: SCIM, apply,
    allow, PATCH out, deny within a second, Ctrl-C, down, nothing left running."""
    marker = f"wheel-{os.getpid()}"
    env = user_env(marker)
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    proc = subprocess.Popen(
        [str(installed / "idsync"), "up", "--port", str(port)],
        cwd=home,
        env=env,
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "stderr.log").open("w"),
        text=True,
    )
    run = Running(proc, port, "", installed / "idsync", home, env)
    try:
        run.token = wait_for_banner(proc, 120)
        drive(run, tmp_path)
    finally:
        stop_and_check_nothing_left(run, marker, tmp_path)
