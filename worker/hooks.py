"""Layer: worker. The change hook: revocations before the commit, the fast path to the worker
after it.

Registered on ``Database`` by the API process (``idsync/app.py``) and by the worker's
runtime (IdP pull and mapping-rule writes), in two parts:

- ``ChangeHook.before_commit``, a commit guard: a deactivation or deletion of a user
  writes that user's revision-guarded tombstone to the cache inside the write's
  transaction, before its COMMIT; a user taken out of a group gets a revision-guarded
  "revocation pending" entry (checks answer ``unknown`` until the worker's recompute
  replaces it, milliseconds later), so no check answers the old ``allow``. If Redis
  does not take it (unreachable, stalled past ``REVOCATION_TIMEOUT_S``, refusing
  writes), the guard raises ``CommitRefused``: the transaction rolls back and the
  caller answers 503 (SCIM) or retries (worker). So no deactivation or removal ever
  commits while the cache can still answer ``allow`` for that user.
  A tombstone whose transaction then fails to commit (PostgreSQL lost at COMMIT) only
  denies a user who is still active in SQL: fail-safe; see docs/worker.md.
- ``ChangeHook.__call__``, after the commit: in one Redis round trip per organization,
  marks the affected users / groups dirty and sets a wake flag (on Redis Cluster one
  round trip per mark: cluster pipelines carry no scripts); when the flag was not
  set yet it enqueues one drain task (coalescing: a burst of changes enqueues one task,
  not one per change). Other wake-ups registered in ``also`` (the events' derive) ride
  the same round trip. If Redis or the broker is unreachable it logs and returns; the
  worker catches up from the change log (the outbox), so nothing is lost.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from models.cache.connection import CacheRedis, cache_redis
from models.cache.layout import NO_ACCESS, PENDING
from models.cache.writer import CacheWriter
from models.db.database import CommitRefused, CommittedChange, Database
from models.settings import Settings
from models.tracing import span
from worker.broker import enqueue_drain, sender_app
from worker.lanes import TOMBSTONE_KINDS, WAKE_OF, lanes_for
from worker.pipeline import WAKE_MS
from worker.write_links import note_write

log = logging.getLogger("idsync.worker.hook")

Enqueue = Callable[[str, str], None]

REVOCATION_TIMEOUT_S = 1.0
"""Connect and read timeout of the hook's Redis client. The revocation is written while
the write holds its organization's row lock, so a stalled Redis costs one timeout (per
round trip: a tombstone write is two, the meta read and the script) before the write is
refused (503), never an unbounded wait."""
RETRY_AFTER_S = 5
"""Retry-After of a write refused because the cache could not take its revocation."""


def hook_client(url: str) -> CacheRedis:
    """The hook's Redis client: bounded timeouts, and one immediate retry on a connection
    error only (a pooled connection that a Redis restart closed; a refused connect fails
    fast either way); a timeout is not retried, so a stall costs one timeout."""
    return cache_redis(
        url,
        socket_timeout=REVOCATION_TIMEOUT_S,
        socket_connect_timeout=REVOCATION_TIMEOUT_S,
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
    )


class ChangeHook:
    """``Database.add_commit_guard(hook.before_commit)`` and ``Database.add_listener(hook)``
    (``install_change_hook`` does both)."""

    def __init__(self, client: CacheRedis | Callable[[], CacheRedis], enqueue: Enqueue) -> None:
        """``client``: the cache's client, or how to make it on first use (a Redis Cluster
        client reads the slot map when made: a process starting while the cluster is
        down still starts, and each write meets the RedisError handling below)."""
        self._client = None if callable(client) else client
        self._connect = client if callable(client) else None
        self.enqueue = enqueue
        self._writers: dict[str, CacheWriter] = {}
        self.also: list[tuple[Callable[[str], str], Callable[[str], None]]] = []
        """Other wake-ups each commit sends, in the marks' round trip: (the flag of an
        organization, what to send when this commit set it) — the events' derive
        (``worker.event_wakes``)."""

    @property
    def redis(self) -> CacheRedis:
        if self._client is None:
            assert self._connect is not None
            self._client = self._connect()
        return self._client

    def _writer(self, org_id: str) -> CacheWriter:
        w = self._writers.get(org_id)
        if w is None:
            if len(self._writers) > 10_000:
                self._writers.clear()
            w = self._writers[org_id] = CacheWriter(self.redis, org_id)
        return w

    def before_commit(self, changes: list[CommittedChange]) -> None:
        """The commit guard: tombstones for deactivated / deleted users at the revision
        their change commits as. Raises CommitRefused when Redis cannot take them (the
        write then rolls back). A cache that is not built yet takes nothing and refuses
        nothing: it answers ``unknown`` for everyone until a rebuild, which reads SQL."""
        for ch in changes:
            if ch.kind in TOMBSTONE_KINDS:
                users = dict.fromkeys(ch.user_ids, NO_ACCESS)
            else:  # taken out of a group: unknown until the worker recomputes them
                users = dict.fromkeys(ch.revoked_user_ids, PENDING)
            if not users:
                continue
            revoked: dict[str, str | int] = {
                "idsync.org_id": ch.org_id,
                "idsync.cache.revision": ch.revision,
            }
            try:
                with span("idsync.cache.revoke", {**revoked, "idsync.cache.users": len(users)}):
                    self._writer(ch.org_id).put(ch.revision, users)
            except redis.RedisError as exc:
                log.warning(
                    "revocation not written: the write is refused",
                    extra={"org_id": ch.org_id, "kind": ch.kind, "error": type(exc).__name__},
                )
                raise CommitRefused(
                    "the permission cache cannot take this revocation right now; nothing "
                    "was changed, retry later",
                    retry_after_s=RETRY_AFTER_S,
                ) from exc

    def __call__(self, changes: list[CommittedChange]) -> None:
        by_org: dict[str, list[CommittedChange]] = defaultdict(list)
        for ch in changes:
            by_org[ch.org_id].append(ch)
        for org_id, chs in by_org.items():
            top = max(ch.revision for ch in chs)
            published: dict[str, str | int] = {
                "idsync.org_id": org_id,
                "idsync.change.revision": top,
            }
            with span("idsync.change.publish", published) as current:
                try:
                    marked, sent = self._publish(org_id, chs)
                except Exception:  # the outbox catch-up covers anything lost here
                    log.warning(
                        "after-commit publish failed", exc_info=True, extra={"org_id": org_id}
                    )
                    continue
                current.set_attributes(
                    {
                        "idsync.drain.sent": sent,
                        "idsync.drain.coalesced": sorted(marked - set(sent)),
                    }
                )

    def _publish(self, org_id: str, changes: list[CommittedChange]) -> tuple[set[str], list[str]]:
        """Mark, and send the drains whose wake flag this set -> (wakes marked, sent)."""
        marks = [
            (lane, ch.revision, members)
            for ch in changes
            for lane, members in lanes_for(ch.kind, ch.user_ids, ch.group_ids)
        ]
        flags = [flag_of(org_id) for flag_of, _send in self.also]
        if not marks:
            for (_flag_of, send), flag in zip(self.also, flags, strict=True):
                if self.redis.set(flag, "1", nx=True, px=WAKE_MS):
                    send(org_id)
            return set(), []
        writer = self._writer(org_id)
        pipe = writer.script_pipeline(transaction=False)
        wakes = [WAKE_OF[lane] for lane, _, _ in marks]
        note_write(writer, pipe, wakes)  # traced: ahead of the marks (worker.write_links)
        results: list[Any]
        if len(marks) == 1 and isinstance(pipe, redis.client.Pipeline) and not pipe.command_stack:
            # One mark and nothing else queued (a create, a single-user change): the script
            # alone, one round trip. A pipeline holding a script first asks SCRIPT EXISTS,
            # a second round trip per write (redis-py's Pipeline.load_scripts).
            (lane, revision, members), wake = marks[0], wakes[0]
            results = [writer.mark(lane, revision, members, wake, WAKE_MS, also=flags)]
        else:
            for i, ((lane, revision, members), wake) in enumerate(zip(marks, wakes, strict=True)):
                writer.mark(lane, revision, members, wake, WAKE_MS, pipe, flags if i == 0 else ())
            results = pipe.execute()[-len(marks) :]
        if flags:  # the first mark set the other wake flags too: [drain, flag...]
            first = list(results[0])
            results[0] = first[0]
            for (_flag_of, send), was_set in zip(self.also, first[1:], strict=True):
                if was_set == 1:
                    send(org_id)
        sent = sorted({w for w, res in zip(wakes, results, strict=True) if res == 1})
        for wake in sent:
            self.enqueue(org_id, wake)
        return set(wakes), sent


def install_change_hook(database: Database, settings: Settings) -> ChangeHook | None:
    """Register the hook (commit guard and listener) on ``database`` when a Redis is
    configured (REDIS_URL or CACHE_REDIS_URL); without one, the worker's outbox sweep is
    the only path (and no check answers from a cache)."""
    url = settings.resolved_cache_redis_url()
    if not url:
        log.info("no REDIS_URL: changes reach the cache through the worker's outbox sweep")
        return None
    broker = settings.redis_url or url
    app = sender_app(settings, broker)

    def enqueue(org_id: str, wake: str) -> None:
        enqueue_drain(app, org_id, wake)

    hook = ChangeHook(lambda: hook_client(url), enqueue)
    database.add_commit_guard(hook.before_commit)
    database.add_listener(hook)
    return hook
