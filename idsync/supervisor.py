"""Layer: app. What ``idsync up`` runs beside its API, watched
(docs/operations.md#idsync-up).

A child process that exits is restarted with exponential backoff, and the reason is
printed in one line (the child's exit code and the last error line it wrote). A child
that cannot start — it exited within ``STARTUP_GRACE_S`` of being started, twice in a
row — is fatal: ``up`` stops with a non-zero exit and that line. A service that is not
a child (the embedded redis-server, which outlives ``up`` by design) is probed instead
and started again on the same port when it stops answering.

The state of each watched thing is a readiness part (``/readyz`` and ``idsync status``
show it), so a restarting worker is visible at once, before its heartbeat goes stale.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Final

from idsync.health import Part

STARTUP_GRACE_S: Final = 10.0
"""A child that exits sooner than this after starting did not start."""
BACKOFF_S: Final = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
POLL_S: Final = 0.25
PROBE_EVERY_S: Final = 2.0
_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*")
_TAIL_LINES: Final = 40

Say = Callable[[str], None]


def say_on_stderr(line: str) -> None:
    print(f"idsync up: {line}", file=sys.stderr, flush=True)


def _error_of(line: str) -> str | None:
    """The error a line reports: an exception line (a traceback ends with one) or a JSON
    log record at ERROR or above; None for anything else."""
    text = line.strip()
    if text.startswith("{"):
        try:
            record = json.loads(text)
        except ValueError:
            return None
        if isinstance(record, dict) and record.get("level") in ("ERROR", "CRITICAL"):
            return str(record.get("msg", ""))[:300]
        return None
    return text[:300] if _ERROR_LINE.match(text) else None


def reason_from(lines: Sequence[str]) -> str:
    """Why a child stopped, from its last output: its last error line, if any."""
    for line in reversed(lines):
        error = _error_of(line)
        if error:
            return error
    return "no error in its output"


def exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


@dataclass
class Child:
    """A process ``up`` started and keeps running."""

    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    failed_starts: int = 0
    state: str = "starting"
    reason: str = ""
    next_start: float = 0.0
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=_TAIL_LINES))

    def spawn(self) -> None:
        self.tail.clear()
        self.proc = subprocess.Popen(  # noqa: S603 - our own CLI, fixed argv
            self.argv, env=self.env, stdout=None, stderr=subprocess.PIPE
        )
        self.started_at = time.monotonic()
        self.state = "running"
        assert self.proc.stderr is not None
        threading.Thread(
            target=self._relay, args=(self.proc.stderr,), name=f"{self.name}-stderr", daemon=True
        ).start()

    def _relay(self, stream: IO[bytes]) -> None:
        """Pass the child's stderr through, keeping its last lines for the reason."""
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace")
            self.tail.append(line.rstrip("\n"))
            sys.stderr.write(line)
        stream.close()

    def stop(self, timeout: float = 20.0) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # Celery: warm shutdown, running tasks finish
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Probe:
    """A service ``up`` does not own as a child, but restarts when it stops answering."""

    name: str
    alive: Callable[[], bool]
    restart: Callable[[], None]
    state: str = "running"
    reason: str = ""
    last_probe: float = 0.0


class Supervisor:
    """Watches ``children`` and ``probes`` from a thread; ``fatal`` is set (with the
    line) when one cannot be kept running, and ``on_fatal`` is called once."""

    def __init__(
        self,
        children: Sequence[Child],
        probes: Sequence[Probe] = (),
        *,
        on_fatal: Callable[[str], None],
        say: Say = say_on_stderr,
    ) -> None:
        self.children = list(children)
        self.probes = list(probes)
        self.on_fatal = on_fatal
        self.say = say
        self.fatal: str | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="idsync-supervisor", daemon=True)

    def start(self) -> None:
        for child in self.children:
            child.spawn()
        self._thread.start()

    def stop(self) -> None:
        """Stop watching, then stop every child (in parallel; each waits for its tasks)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        stoppers = [threading.Thread(target=c.stop) for c in self.children]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()

    def parts(self) -> list[Part]:
        """One readiness part per watched thing (named ``up.<name>``)."""
        with self._lock:
            out = []
            for child in self.children:
                if child.state == "running":
                    pid = child.proc.pid if child.proc is not None else "?"
                    note = f"running (pid {pid}, restarts {child.restarts})"
                    out.append(Part(f"up.{child.name}", "ok", note))
                else:
                    out.append(Part(f"up.{child.name}", "fail", f"{child.state}: {child.reason}"))
            for probe in self.probes:
                if probe.state == "running":
                    out.append(Part(f"up.{probe.name}", "ok", "answers"))
                else:
                    out.append(Part(f"up.{probe.name}", "fail", f"{probe.state}: {probe.reason}"))
            return out

    # -- the watch loop ---------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.wait(POLL_S):
            now = time.monotonic()
            with self._lock:
                for child in self.children:
                    self._watch_child(child, now)
            for probe in self.probes:
                self._watch_probe(probe, now)
            if self.fatal is not None:
                self.on_fatal(self.fatal)
                return

    def _watch_child(self, child: Child, now: float) -> None:
        if child.state == "restarting":
            if now >= child.next_start and not self._stopping.is_set():
                self.say(f"starting {child.name} again")
                child.spawn()
            return
        proc = child.proc
        if proc is None or child.state != "running":
            return
        code = proc.poll()
        if code is None:
            if now - child.started_at > STARTUP_GRACE_S:
                child.failed_starts = 0
            return
        if self._stopping.is_set():
            return
        time.sleep(0.1)  # let the stderr relay take the last lines
        why = reason_from(list(child.tail))
        quick = now - child.started_at < STARTUP_GRACE_S
        child.failed_starts = child.failed_starts + 1 if quick else 0
        child.reason = f"{exit_text(code)} ({why})"
        if child.failed_starts >= 2:
            child.state = "failed"
            self.fatal = (
                f"{child.name} cannot start: it {exit_text(code)} within "
                f"{STARTUP_GRACE_S:g} s of starting, twice ({why})"
            )
            return
        delay = BACKOFF_S[min(child.restarts, len(BACKOFF_S) - 1)]
        child.restarts += 1
        child.state = "restarting"
        child.next_start = now + delay
        self.say(f"{child.name} {child.reason}; restarting in {delay:g} s")

    def _watch_probe(self, probe: Probe, now: float) -> None:
        if now - probe.last_probe < PROBE_EVERY_S or self._stopping.is_set():
            return
        probe.last_probe = now
        if probe.alive():
            if probe.state != "running":
                self.say(f"{probe.name} answers again")
            probe.state, probe.reason = "running", ""
            return
        probe.state, probe.reason = "restarting", "does not answer"
        self.say(f"{probe.name} does not answer; starting it again")
        try:
            probe.restart()
        except Exception as exc:
            probe.state, probe.reason = "failed", f"{type(exc).__name__}: {exc}"
            self.fatal = f"{probe.name} cannot be started again: {probe.reason}"
            return
        probe.state, probe.reason = "running", ""
        self.say(f"{probe.name} started again")
