"""Layer: store. The check client over ``redis.asyncio``: the same reads and answers as
``CheckClient`` (``models.cache.reading``), for servers that must never block their event loop.

Every round trip is bounded by the client's ``socket_timeout`` / ``socket_connect_timeout``
(a stalled Redis raises ``redis.TimeoutError``, an unreachable one
``redis.ConnectionError``); waiting for ``min_revision`` sleeps on the loop; the SQL
fallback is the caller's (``sql``: an awaitable that runs it off the loop).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio as aredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

from models.cache import scripts
from models.cache.reading import READ, Reader, Retry
from models.cache.results import Query, Result, behind, not_built

ATTEMPTS = 4
SqlFallback = Callable[[str, Sequence[Query]], Awaitable[list[Result]]]
"""``sql(org_id, queries)``: answers computed from SQL, off the event loop."""


class AsyncCheckClient:
    """Permission checks of one organization from the Redis cache, on an event loop."""

    def __init__(
        self,
        client: aredis.Redis | RedisCluster,
        org_id: str,
        *,
        sql: SqlFallback | None = None,
        max_wait_s: float = 0.25,
        decoded_cache_size: int = 20_000,
    ) -> None:
        self.redis = client
        self.org_id = org_id
        self.reader = Reader(org_id, decoded_cache_size=decoded_cache_size)
        self.sql = sql
        self.max_wait_s = max_wait_s
        self._shas = {s: scripts.sha1(s) for s in (scripts.READ, scripts.CHECK)}
        self.round_trips = 0

    async def _eval_cluster(
        self, client: RedisCluster, script: str, keys: list[str], args: list[Any]
    ) -> Any:
        try:
            return await client.evalsha(self._shas[script], len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(script, len(keys), *keys, *args)

    async def _eval(self, script: str, keys: list[str], args: list[Any]) -> Any:
        """One EVALSHA on a pooled connection (loading the script when Redis lacks it)."""
        self.round_trips += 1
        client = self.redis
        if isinstance(client, RedisCluster):  # routed to the node of the org's slot
            return await self._eval_cluster(client, script, keys, args)
        pool = client.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await conn.send_command(
                "EVALSHA", self._shas[script], len(keys), *keys, *args, check_health=False
            )
            try:
                return await conn.read_response()
            except NoScriptError:
                await conn.send_command("EVAL", script, len(keys), *keys, *args)
                return await conn.read_response()
        except BaseException:
            await conn.disconnect()
            raise
        finally:
            await pool.release(conn)

    async def _from_cache(self, queries: Sequence[Query]) -> list[Result]:
        reader = self.reader
        for _attempt in range(ATTEMPTS):
            plan = reader.plan(queries)
            try:
                if plan.mode == READ:
                    out = await self._eval(scripts.READ, *reader.read_call(plan))
                    results = reader.absorb_read(plan, out)
                    if results is not None:
                        return results
                out = await self._eval(scripts.CHECK, *reader.fill_call(plan))
                return reader.absorb_fill(plan, out)
            except Retry:
                continue
        return not_built(queries)  # pragma: no cover - generation flapping: unknown

    async def batch(
        self, queries: Sequence[Query], *, min_revision: int | None = None
    ) -> list[Result]:
        """Answers to ``queries``, in order, from one Redis round trip (see
        ``CheckClient.batch``). Malformed questions raise ValueError."""
        results = await self._from_cache(queries)
        if min_revision is None or all(r.revision >= min_revision for r in results):
            return results
        deadline = time.monotonic() + self.max_wait_s
        while time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            results = await self._from_cache(queries)
            if all(r.revision >= min_revision for r in results):
                return results
        if self.sql is not None:
            return await self.sql(self.org_id, queries)
        return behind(queries, results, min_revision)
