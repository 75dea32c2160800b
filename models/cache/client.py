"""Layer: store. The check client: permission checks answered from Redis in one round
trip, or from process memory under Redis's invalidation reports.

A check (or a batch of N) is one Redis round trip: the ``READ`` script in the usual case
(a few microseconds inside Redis), ``CHECK`` when this process lacks a group set or
compiled blob the answer needs (``models.cache.reading``). The decision is made here,
in Python, by the pure functions of ``models.access.compiled_checks`` (``models.cache.results``), so
Redis-backed and SQL-backed answers can never disagree.

Answers carry the cache revision they reflect and one of three statuses: ``allow``,
``deny`` or ``unknown`` (the cache is not built, was flushed, or is inconsistent —
never a silent deny-all or allow-all). Unknown, deactivated and deleted users are a
``deny``. Without ``local`` every answer is read from Redis at the time of the call.
With ``local=LocalAnswers.watching(url)`` (``models.cache.local_answers``) an answer
already read is given again from memory for as long as Redis has reported no change to
the organization's keys: a repeated check costs no round trip, and a write (a
revocation included) drops it within the invalidation connection's delay (measured in
``bench/bench_cache.py``; bounded by its 0.5 s lease when that connection stalls).

``AsyncCheckClient`` (``models.cache.async_client``) is the same over ``redis.asyncio``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError

from models.access.evaluator import ALL
from models.access.inputs import ResourceRef
from models.access.refs import SyncRef
from models.cache import scripts
from models.cache.fallback import answer_from_sql
from models.cache.local_answers import LocalAnswers
from models.cache.reading import READ, Reader, Retry
from models.cache.results import (
    Answer,
    Check,
    Query,
    Result,
    SpacesAnswer,
    SpacesQuery,
    SyncCheck,
    behind,
    decide,
    label_fields,
    not_built,
    with_registered_labels,
)
from models.db.database import Database

ATTEMPTS = 4
"""Plans per call: a generation flip or a set change between plans costs one more."""


class CheckClient:
    """Permission checks of one organization from the Redis cache.

    ``client``: a single Redis's client or a Redis Cluster's (the calls go to the node
    that holds the organization's slot). ``database`` (optional) is used when a caller
    asks for ``min_revision`` and the cache stays behind it for ``max_wait_s``: the
    answer is then computed from SQL with the same pure decision functions. ``local``
    (optional, single Redis only): answers kept in memory between invalidation reports;
    one ``LocalAnswers`` may serve every client of a process.
    """

    def __init__(
        self,
        client: redis.Redis | RedisCluster,
        org_id: str,
        *,
        database: Database | None = None,
        max_wait_s: float = 0.25,
        decoded_cache_size: int = 20_000,
        local: LocalAnswers | None = None,
    ) -> None:
        if local is not None and isinstance(client, RedisCluster):
            raise ValueError("answers kept in memory need a single Redis, not a Cluster")
        self.local = local
        self.redis = client
        self.org_id = org_id
        self.reader = Reader(org_id, decoded_cache_size=decoded_cache_size)
        self.keys = self.reader.keys
        self.database = database
        self.max_wait_s = max_wait_s
        self._shas = {s: scripts.sha1(s) for s in (scripts.READ, scripts.CHECK)}
        self.round_trips = 0

    # -- the one round trip -------------------------------------------------------------

    def _node(self) -> redis.Redis:
        if isinstance(self.redis, RedisCluster):
            node = self.redis.get_node_from_key(self.keys.meta)  # type: ignore[no-untyped-call]
            found = self.redis.get_redis_connection(node)
            assert isinstance(found, redis.Redis)
            return found
        return self.redis

    def _eval(self, script: str, keys: list[str], args: list[Any]) -> Any:
        """One EVALSHA on a pooled connection (loading the script when Redis lacks it)."""
        sha = self._shas[script]
        for _attempt in range(2):
            self.round_trips += 1
            pool = self._node().connection_pool
            conn = pool.get_connection()
            try:
                conn.send_command("EVALSHA", sha, len(keys), *keys, *args, check_health=False)  # type: ignore[no-untyped-call]
                return conn.read_response()
            except NoScriptError:
                self._node().script_load(script)
            except BaseException:
                conn.disconnect()  # type: ignore[no-untyped-call]
                raise
            finally:
                pool.release(conn)
        raise NoScriptError("script not loaded")  # pragma: no cover - flushed twice

    def _from_cache(self, queries: Sequence[Query]) -> list[Result]:
        reader = self.reader
        for _attempt in range(ATTEMPTS):
            plan = reader.plan(queries)
            try:
                if plan.mode == READ:
                    results = reader.absorb_read(
                        plan, self._eval(scripts.READ, *reader.read_call(plan))
                    )
                    if results is not None:
                        return results
                return reader.absorb_fill(plan, self._eval(scripts.CHECK, *reader.fill_call(plan)))
            except Retry:
                continue
        return not_built(queries)  # pragma: no cover - generation flapping: unknown

    # -- public API ---------------------------------------------------------------------

    def batch(self, queries: Sequence[Query], *, min_revision: int | None = None) -> list[Result]:
        """Answers to ``queries``, in order, from one Redis round trip.

        Malformed questions (unknown grant, wrong resource type) raise ValueError.
        """
        local = self.local
        if local is None:
            return self._fresh(queries, min_revision)
        found = local.answers(self.org_id, queries, min_revision)
        if found is not None:
            return found
        epoch = local.epoch(self.org_id)
        results = self._fresh(queries, min_revision)
        local.keep(self.org_id, epoch, queries, results)
        return results

    def _fresh(self, queries: Sequence[Query], min_revision: int | None) -> list[Result]:
        """Answers read from Redis now (waiting for ``min_revision``, then SQL)."""
        results = self._from_cache(queries)
        if min_revision is None or all(r.revision >= min_revision for r in results):
            return results
        deadline = time.monotonic() + self.max_wait_s
        while time.monotonic() < deadline:
            time.sleep(0.01)
            results = self._from_cache(queries)
            if all(r.revision >= min_revision for r in results):
                return results
        if self.database is not None:
            return answer_from_sql(self.database, self.org_id, queries)
        return behind(queries, results, min_revision)

    def check(
        self,
        user: str,
        workspace: str,
        grant: str,
        resource: ResourceRef | None = None,
        *,
        min_revision: int | None = None,
    ) -> Answer:
        """May ``user`` use ``grant`` (on ``resource``) in ``workspace``? Space-scoped
        resources (audiences, syncs) carry their ``space_id`` in the ResourceRef."""
        result = self.batch([Check(user, workspace, grant, resource)], min_revision=min_revision)
        assert isinstance(result[0], Answer)
        return result[0]

    def check_sync(
        self,
        user: str,
        workspace: str,
        source: str | ResourceRef,
        destination: str | ResourceRef,
        action: str,
        *,
        space_id: str | None = None,
        min_revision: int | None = None,
    ) -> Answer:
        """Sync from ``source`` to ``destination``: both grants from the same group."""
        sync = SyncRef.of(source, destination, space_id)
        result = self.batch([SyncCheck(user, workspace, sync, action)], min_revision=min_revision)
        assert isinstance(result[0], Answer)
        return result[0]

    def visible_spaces(
        self, user: str, workspace: str, *, min_revision: int | None = None
    ) -> SpacesAnswer:
        result = self.batch([SpacesQuery(user, workspace)], min_revision=min_revision)
        assert isinstance(result[0], SpacesAnswer)
        return result[0]

    def revision(self) -> int | None:
        """The cache's watermark (every change up to it is reflected); None if not built."""
        gen, wm = self._node().hmget(self.keys.meta, ["gen", "wm"])
        if gen is None:
            return None
        return 0 if wm is None else int(wm)


__all__ = [
    "ALL",
    "Answer",
    "Check",
    "CheckClient",
    "Query",
    "Result",
    "SpacesAnswer",
    "SpacesQuery",
    "SyncCheck",
    "decide",
    "label_fields",
    "with_registered_labels",
]
