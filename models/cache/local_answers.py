"""Layer: store. Answers kept in process memory while Redis reports every change that
could alter them (``models.cache.tracking``): a repeated question costs no round trip.

An answer is kept per (organization, question) only when it came from the cache
(``source: cache``) and is ``allow`` or ``deny`` (an ``unknown`` is asked again), and
only when nothing was reported for its organization between sending the read and
keeping the answer (the *epoch* of the organization, and of the process for a lost
connection or a flush, did not move): a change that raced the read is never papered
over. A report drops every answer kept for the organization; a lost or stalled
invalidation connection (``Invalidations.usable()`` false) drops everything and keeps
nothing until the connection is back.

An answer kept reflects exactly what Redis would answer now (no key it was read from
has changed since), revision included: ``min_revision`` is served from memory when the
kept revision is at least that, and otherwise asks Redis (and waits, or falls back to
SQL) as before.

The HTTP check API runs the invalidation connection as a task of its event loop; a
synchronous program (``CheckClient(local=LocalAnswers.watching(url))``) runs it in a
daemon thread with its own loop (``watching``). Reports and reads may then come from
different threads: keeping and dropping take a lock, so a report never interleaves with
the epoch test and the insertion of a ``keep``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence

from models.cache.results import Query, Result
from models.cache.tracking import Invalidations

MAX_ANSWERS = 200_000
"""Answers kept by one process (all organizations); past it all are dropped and refilled
(~40 MB at most)."""

Epoch = tuple[int, int]


class LocalAnswers:
    """The answers one process keeps (see the module doc)."""

    def __init__(self, max_answers: int = MAX_ANSWERS) -> None:
        self.tracking: Invalidations | None = None
        self.max_answers = max_answers
        self._size = 0
        self._kept: dict[str, dict[Query, Result]] = {}
        self._epochs: dict[str, int] = {}
        self._all = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.hits = 0

    @classmethod
    def watching(cls, url: str, *, max_answers: int = MAX_ANSWERS) -> LocalAnswers:
        """Answers watched by an invalidation connection to ``url`` (a single Redis's
        ``redis://`` URL) that runs in a daemon thread until ``close()``; nothing is
        kept until that connection is up."""
        local = cls(max_answers)
        tracking = Invalidations(url, local.changed)
        local.tracking = tracking
        started = threading.Event()

        async def watch() -> None:
            local._loop = asyncio.get_running_loop()
            local._stop = asyncio.Event()
            started.set()
            task = asyncio.create_task(tracking.run())
            await local._stop.wait()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        local._thread = threading.Thread(
            target=asyncio.run, args=(watch(),), name="idsync-cache-invalidations", daemon=True
        )
        local._thread.start()
        started.wait()
        return local

    def close(self) -> None:
        """Stop the thread ``watching`` started (answers are then never kept)."""
        if self._loop is not None and self._stop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=5)
            self._thread = None

    def changed(self, org_id: str | None) -> None:
        """Redis reported a change of ``org_id``'s keys (None: of anything)."""
        with self._lock:
            if org_id is None:
                self._all += 1
                self._clear()
                return
            self._epochs[org_id] = self._epochs.get(org_id, 0) + 1
            dropped = self._kept.pop(org_id, None)
            if dropped is not None:
                self._size -= len(dropped)

    def _clear(self) -> None:
        self._kept.clear()
        self._size = 0

    def epoch(self, org_id: str) -> Epoch:
        """Taken before a read is sent; ``keep`` compares it after."""
        return self._all, self._epochs.get(org_id, 0)

    def _usable(self) -> bool:
        if self.tracking is not None and self.tracking.usable():
            return True
        if self._kept:
            with self._lock:
                self._clear()
        return False

    def answers(
        self, org_id: str, queries: Sequence[Query], min_revision: int | None
    ) -> list[Result] | None:
        """Every answer from memory, or None (ask Redis)."""
        kept = self._kept.get(org_id)
        if kept is None or not self._usable():
            return None
        out: list[Result] = []
        for q in queries:
            found = kept.get(q)
            if found is None or (min_revision is not None and found.revision < min_revision):
                return None
            out.append(found)
        self.hits += len(out)
        return out

    def keep(
        self, org_id: str, epoch: Epoch, queries: Sequence[Query], results: Sequence[Result]
    ) -> None:
        """Keep ``results`` (read after ``epoch`` was taken) when nothing moved since."""
        if not self._usable():
            return
        with self._lock:
            if epoch != self.epoch(org_id):
                return
            if self._size + len(queries) > self.max_answers:
                self._clear()
            kept = self._kept.setdefault(org_id, {})
            for q, r in zip(queries, results, strict=True):
                if r.source == "cache" and r.known and q not in kept:
                    kept[q] = r
                    self._size += 1
