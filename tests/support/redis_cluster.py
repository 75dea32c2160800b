"""A local 3-master Redis Cluster for tests (real ``redis-server`` processes).

``LocalCluster(workdir).start()`` runs ``redis-server --cluster-enabled yes`` three times
on free loopback ports (each with its own directory, cluster config file and cluster
bus port, no persistence), joins them with ``redis-cli --cluster create … --cluster-replicas
0 --cluster-yes``, and waits until every node reports ``cluster_state:ok`` and knows the
whole slot map. ``stop()`` kills the servers. The binaries are Debian's
(``redis-server``, and ``redis-cli`` from ``redis-tools``); a missing binary is an error,
never a skip.
"""

from __future__ import annotations

import ctypes
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import redis

REDIS_SERVER: Final = "/usr/bin/redis-server"
REDIS_CLI: Final = "/usr/bin/redis-cli"
HOST: Final = "127.0.0.1"
MASTERS: Final = 3
READY_TIMEOUT_S: Final = 30.0


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the test process dies (prctl
    PR_SET_PDEATHSIG), so a killed pytest leaves no cluster behind."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)


class ClusterError(RuntimeError):
    """The local cluster could not be started."""


def missing_binaries() -> list[str]:
    """Which of the binaries the cluster needs are not installed (empty: all there)."""
    return [b for b in (REDIS_SERVER, REDIS_CLI) if not Path(b).is_file()]


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports that were free a moment ago (all bound at once, so
    they differ from each other)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Node:
    port: int
    bus_port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def client(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, socket_timeout=5, socket_connect_timeout=5)

    def log(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _wait(what: str, pred: object, timeout: float = READY_TIMEOUT_S) -> None:
    assert callable(pred)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if pred():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise ClusterError(f"{what} within {timeout:g}s")
        time.sleep(0.05)


@dataclass
class LocalCluster:
    workdir: Path
    nodes: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        """``CACHE_REDIS_URL`` of the cache on this cluster (one node; the client finds
        the others)."""
        return f"redis://{self.nodes[0].address}/0?cluster=true"

    def start(self) -> LocalCluster:
        missing = missing_binaries()
        if missing:
            raise ClusterError(
                f"{', '.join(missing)} not installed: install Debian's redis-server "
                "(redis-cli comes with it, package redis-tools)"
            )
        for _attempt in range(3):  # a port taken between free_ports() and bind: retry
            try:
                self._start_once()
                return self
            except ClusterError:
                logs = "\n".join(n.log()[-2000:] for n in self.nodes)
                self.stop()
                if "Address already in use" not in logs:
                    raise
        raise ClusterError("no free ports for the cluster after 3 attempts")

    def _start_once(self) -> None:
        ports = free_ports(2 * MASTERS)
        self.nodes = []
        for i in range(MASTERS):
            directory = self.workdir / f"node-{i}"
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True)
            node = Node(ports[i], ports[MASTERS + i], directory)
            node.process = subprocess.Popen(
                [
                    REDIS_SERVER,
                    "--bind",
                    HOST,
                    "--port",
                    str(node.port),
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    str(node.bus_port),
                    "--cluster-config-file",
                    str(directory / "nodes.conf"),
                    "--cluster-node-timeout",
                    "5000",
                    "--dir",
                    str(directory),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--logfile",
                    str(directory / "redis.log"),
                    "--daemonize",
                    "no",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - prctl only, no locks taken
            )
            self.nodes.append(node)
        for node in self.nodes:
            _wait(f"redis-server on port {node.port} did not answer", node.client().ping, 10)
        created = subprocess.run(
            [
                REDIS_CLI,
                "--cluster",
                "create",
                *(n.address for n in self.nodes),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            timeout=READY_TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if created.returncode != 0:
            raise ClusterError(
                "redis-cli --cluster create failed:\n"
                + created.stdout.decode(errors="replace")
                + created.stderr.decode(errors="replace")
            )
        for node in self.nodes:
            _wait(f"node {node.address} did not reach cluster_state:ok", lambda n=node: _ok(n))

    def flush(self) -> None:
        """Empty every master (between tests) and drop their script caches."""
        for node in self.nodes:
            c = node.client()
            try:
                c.flushall()
                c.script_flush()
            finally:
                c.close()

    def stop(self) -> None:
        for node in self.nodes:
            proc = node.process
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for node in self.nodes:
            proc = node.process
            if proc is None:
                continue
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.nodes = []


def _ok(node: Node) -> bool:
    c = node.client()
    try:
        info = c.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
    finally:
        c.close()
    text = info.decode() if isinstance(info, bytes) else str(info)
    fields = dict(line.split(":", 1) for line in text.split() if ":" in line)
    return (
        fields.get("cluster_state") == "ok"
        and fields.get("cluster_slots_ok") == "16384"
        and fields.get("cluster_known_nodes") == str(MASTERS)
    )
