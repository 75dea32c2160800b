"""Layer: store. The writer side of the permission cache: atomic, revision-guarded writes.

All writes go through Lua scripts (``scripts.py``) so that a write is atomic per
call and can never overwrite a newer revision: a recompute that started earlier and
finishes later loses. While a full rebuild runs, every write lands in both the
serving generation and the one being built (nothing is lost across the flip).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.commands.core import Script

from models.cache import scripts
from models.cache.connection import CacheRedis, is_cluster
from models.cache.layout import (
    LANE_CONFIG,
    STREAM_MAXLEN,
    OrgKeys,
    label_field_workspace,
)
from models.cache.profiles import SetPayload

USERS_PER_CALL = 2000
SETS_PER_CALL = 500


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _int(value: Any, default: int = 0) -> int:
    return default if value is None else int(_s(value))


@dataclass(frozen=True, slots=True)
class Meta:
    gen: int | None
    building: int | None
    wm: int
    cursor: int
    cfgrev: int
    built_at: float | None

    @property
    def built(self) -> bool:
        return self.gen is not None

    @property
    def writable(self) -> bool:
        return self.gen is not None or self.building is not None


@dataclass(slots=True)
class PutResult:
    written: int = 0
    stale: int = 0
    changed_sets: int = 0
    need: set[str] = field(default_factory=set)
    not_built: bool = False


@dataclass(slots=True)
class LabelsResult:
    """Outcome of a registered-label sync: changed fields of the serving generation."""

    changed: list[str] = field(default_factory=list)
    stale: bool = False
    not_built: bool = False


class InOrder:
    """A pipeline of script calls where a pipeline cannot carry scripts: on Redis Cluster
    (redis-py refuses EVALSHA in cluster pipelines) each queued call runs at once, in
    order, each one atomic on the organization's slot; ``execute()`` returns their
    results as a pipeline's would. Callers queue in an order that stays correct when a
    failure stops the sequence part way (dirty marks before the cursor that passes them).
    """

    def __init__(self) -> None:
        self.results: list[Any] = []

    def execute(self) -> list[Any]:
        out, self.results = self.results, []
        return out


ScriptPipeline = redis.client.Pipeline | InOrder
"""Where queued script calls go: a pipeline of a single Redis, else ``InOrder``."""


class Scripts:
    """The registered scripts of one Redis client (EVALSHA with transparent reload)."""

    def __init__(self, client: CacheRedis) -> None:
        self.check = client.register_script(scripts.CHECK)
        self.put = client.register_script(scripts.PUT)
        self.labels = client.register_script(scripts.LABELS)
        self.prune = client.register_script(scripts.PRUNE)
        self.mark = client.register_script(scripts.MARK)
        self.done = client.register_script(scripts.DONE)
        self.watermark = client.register_script(scripts.WATERMARK)
        self.raise_field = client.register_script(scripts.RAISE)
        self.begin_rebuild = client.register_script(scripts.BEGIN_REBUILD)
        self.abort_rebuild = client.register_script(scripts.ABORT_REBUILD)
        self.flip = client.register_script(scripts.FLIP)
        self.renew = client.register_script(scripts.RENEW)
        self.release = client.register_script(scripts.RELEASE)
        self.claim = client.register_script(scripts.CLAIM)
        self.release_idle = client.register_script(scripts.RELEASE_IDLE)


class CacheWriter:
    """Writes one organization's permission cache."""

    def __init__(self, client: CacheRedis, org_id: str) -> None:
        self.redis = client
        self.org_id = org_id
        self.keys = OrgKeys.of(org_id)
        self.scripts = Scripts(client)

    # -- meta ---------------------------------------------------------------------

    def meta(self) -> Meta:
        raw = self.redis.hmget(
            self.keys.meta, ["gen", "building", "wm", "cursor", "cfgrev", "built_at"]
        )
        gen, building, wm, cursor, cfgrev, built_at = raw
        return Meta(
            gen=None if gen is None else _int(gen),
            building=None if building is None else _int(building),
            wm=_int(wm),
            cursor=_int(cursor),
            cfgrev=_int(cfgrev),
            built_at=None if built_at is None else float(_s(built_at)),
        )

    def raise_meta(self, name: str, value: int) -> bool:
        """Raise a numeric meta field (cursor, wm, cfgrev); no-op on an unbuilt cache."""
        return int(self.scripts.raise_field(keys=[self.keys.meta], args=[name, value])) == 1

    def queue_raise_meta(self, pipe: ScriptPipeline, name: str, value: int) -> None:
        """``raise_meta`` queued in ``pipe`` (its result: 1 raised, else 0)."""
        self._queue(pipe, self.scripts.raise_field, [self.keys.meta], [name, value])

    def script_pipeline(self, *, transaction: bool) -> ScriptPipeline:
        """A pipeline for ``mark`` / ``queue_raise_meta`` calls: one round trip (one
        MULTI/EXEC with ``transaction``) on a single Redis; ``InOrder`` on a cluster."""
        if is_cluster(self.redis):
            return InOrder()
        assert isinstance(self.redis, redis.Redis)
        return self.redis.pipeline(transaction=transaction)

    @staticmethod
    def _queue(pipe: ScriptPipeline, script: Script, keys: list[Any], args: list[Any]) -> Any:
        if isinstance(pipe, InOrder):
            out = script(keys=keys, args=args)
            pipe.results.append(out)
            return out
        return script(keys=keys, args=args, client=pipe)

    # -- user / set writes -----------------------------------------------------------

    def _put_once(
        self,
        meta: Meta,
        revision: int,
        users: Sequence[tuple[str, str]],
        sets: Sequence[SetPayload],
        mode: str,
    ) -> list[Any] | None:
        gen = "" if meta.gen is None else str(meta.gen)
        bld = "" if meta.building is None else str(meta.building)
        a = self.keys.generation(gen or bld)
        b = self.keys.generation(bld or gen)
        args: list[Any] = [gen, bld, revision, STREAM_MAXLEN, mode, len(sets)]
        for p in sets:
            args.extend([p.key, p.value, len(p.blobs)])
            for cid, blob in p.blobs.items():
                args.extend([cid, blob])
        args.append(len(users))
        for uid, key in users:
            args.extend([uid, key])
        out = self.scripts.put(keys=[self.keys.meta, *a, *b, self.keys.stream], args=args)
        code = int(out[0])
        if code == -1:
            return None
        return list(out)

    def put(
        self,
        revision: int,
        users: Mapping[str, str] | None = None,
        sets: Mapping[str, SetPayload] | Iterable[SetPayload] = (),
        *,
        building: int | None = None,
    ) -> PutResult:
        """Store set payloads, then point users at set keys (``-`` = no access), at ``revision``.

        Sets go first so a user never points at a set that is not there. Each call is
        atomic; large inputs are split into several calls (each one atomic per user).
        ``building``: write only into that generation being built (a rebuild chunk);
        ``not_built`` when it is no longer the one being built (taken over, flipped).
        """
        set_list = list(sets.values()) if isinstance(sets, Mapping) else list(sets)
        user_list = sorted((users or {}).items())
        result = PutResult()
        mode = "all" if building is None else "building"
        batches: list[tuple[list[SetPayload], list[tuple[str, str]]]] = []
        for i in range(0, len(set_list), SETS_PER_CALL):
            batches.append((set_list[i : i + SETS_PER_CALL], []))
        for i in range(0, len(user_list), USERS_PER_CALL):
            batches.append(([], user_list[i : i + USERS_PER_CALL]))
        for set_batch, user_batch in batches:
            for _attempt in range(10):
                meta = self.meta()
                if not meta.writable or (building is not None and meta.building != building):
                    result.not_built = True
                    return result
                out = self._put_once(meta, revision, user_batch, set_batch, mode)
                if out is not None:
                    break
            else:  # pragma: no cover - meta flapping for 10 attempts
                raise RuntimeError("cache meta kept changing during a write")
            if int(out[0]) == -2:
                result.not_built = True
                return result
            result.written += int(out[0])
            result.stale += int(out[1])
            result.changed_sets += int(out[2])
            result.need.update(_s(x) for x in out[3:])
        return result

    def put_labels(
        self,
        revision: int,
        entries: Mapping[str, str],
        workspaces: Iterable[str],
        *,
        building: int | None = None,
    ) -> LabelsResult:
        """Replace the registered-label hash with ``entries`` (the complete set of the
        organization at SQL ``revision``: ``label_field(...)`` -> ``encode_labels(...)``)
        and the workspace set with ``workspaces`` (every workspace id at ``revision``).

        One atomic, revision-guarded script call (an older snapshot never overwrites a
        newer one); while a rebuild runs it writes both generations. Changed fields of
        the serving generation append one ``u=*`` event per affected workspace.
        """
        mode = "all" if building is None else "building"
        flat: list[Any] = []
        for name, value in sorted(entries.items()):
            flat.extend([name, value])
        ws = sorted(set(workspaces))
        flat.extend([len(ws), *ws])
        result = LabelsResult()
        for _attempt in range(10):
            meta = self.meta()
            if not meta.writable or (building is not None and meta.building != building):
                result.not_built = True
                return result
            gen = "" if meta.gen is None else str(meta.gen)
            bld = "" if meta.building is None else str(meta.building)
            keys = [
                self.keys.meta,
                self.keys.labels(gen or bld),
                self.keys.labels(bld or gen),
                self.keys.workspaces(gen or bld),
                self.keys.workspaces(bld or gen),
            ]
            out = self.scripts.labels(
                keys=keys, args=[gen, bld, revision, mode, len(entries), *flat]
            )
            code = int(out[0])
            if code == -1:
                continue
            if code == -2:
                result.not_built = True
                return result
            result.stale = code == 1
            result.changed = sorted(_s(x) for x in out[1:])
            break
        else:  # pragma: no cover - meta flapping for 10 attempts
            raise RuntimeError("cache meta kept changing during a write")
        workspaces = sorted({label_field_workspace(f) for f in result.changed})
        self.emit({"u": "*", "ws": ws, "rev": revision} for ws in workspaces)
        return result

    def prune_tombstones(self, gen: int, tombstones: Mapping[str, str]) -> int:
        """Drop ``{user: tombstone value}`` from generation ``gen`` where the stored value is
        still that tombstone; -1 when ``gen`` no longer serves or a rebuild runs."""
        dropped = 0
        items = sorted(tombstones.items())
        for i in range(0, len(items), USERS_PER_CALL):
            args: list[Any] = [gen]
            for uid, value in items[i : i + USERS_PER_CALL]:
                args.extend([uid, value])
            out = int(self.scripts.prune(keys=[self.keys.meta, self.keys.users(gen)], args=args))
            if out < 0:
                return -1 if dropped == 0 else dropped
            dropped += out
        return dropped

    def emit(self, events: Iterable[Mapping[str, str | int]]) -> None:
        """Append change events to the organization's capped stream."""
        pipe = self.redis.pipeline(transaction=False)
        n = 0
        for ev in events:
            fields: dict[str | bytes, str | int] = {k: v for k, v in ev.items()}
            pipe.xadd(self.keys.stream, fields, maxlen=STREAM_MAXLEN, approximate=True)  # type: ignore[arg-type]
            n += 1
        if n:
            pipe.execute()

    # -- dirty lanes ----------------------------------------------------------------

    def mark(
        self,
        lane: str,
        revision: int,
        members: Iterable[str],
        wake: str,
        wake_ms: int,
        pipe: ScriptPipeline | None = None,
        also: Sequence[str] = (),
    ) -> Any:
        """Mark members dirty at ``revision``; returns 1 when a drain should be enqueued
        (else a drain is on its way or running, and is asked to look once more).

        ``also``: other wake flags of the organization (keys with its hash tag) to set
        (``NX``, ``wake_ms``) in the same round trip; the result is then ``[drain bit,
        then 1 per flag set now / 0 per flag already set]``."""
        mem = list(members)
        keys = [
            self.keys.dirty(lane),
            self.keys.dirty_hi(lane),
            self.keys.wake(wake),
            self.keys.meta,
            self.keys.again(wake),
            *also,
        ]
        args: list[Any] = [revision, wake_ms, 1 if lane == LANE_CONFIG else 0, *mem]
        if pipe is None:
            return self.scripts.mark(keys=keys, args=args)
        return self._queue(pipe, self.scripts.mark, keys, args)

    def pending(self, lane: str, limit: int) -> list[tuple[str, int]]:
        """Oldest dirty members of a lane with their earliest unapplied revision."""
        rows: list[Any] = self.redis.zrange(self.keys.dirty(lane), 0, limit - 1, withscores=True)
        return [(_s(row[0]), int(row[1])) for row in rows]

    def done(self, lane: str, revision: int, members: Sequence[str]) -> int:
        if not members:
            return 0
        keys = [self.keys.dirty(lane), self.keys.dirty_hi(lane)]
        return int(self.scripts.done(keys=keys, args=[revision, *members]))

    def backlog(self, lanes: Iterable[str]) -> int:
        pipe = self.redis.pipeline(transaction=False)
        for lane in lanes:
            pipe.zcard(self.keys.dirty(lane))
        return sum(int(x) for x in pipe.execute())

    def watermark(self, lanes: Sequence[str]) -> int:
        keys = [self.keys.meta, *(self.keys.dirty(lane) for lane in lanes)]
        return int(self.scripts.watermark(keys=keys, args=[]))

    # -- leases -----------------------------------------------------------------------

    def acquire(self, key: str, ttl_ms: int) -> str | None:
        token = uuid.uuid4().hex
        if self.redis.set(key, token, nx=True, px=ttl_ms):
            return token
        return None

    def renew(self, key: str, token: str, ttl_ms: int) -> bool:
        return int(self.scripts.renew(keys=[key], args=[token, ttl_ms])) == 1

    def release(self, key: str, token: str) -> None:
        self.scripts.release(keys=[key], args=[token])

    def claim(self, key: str, again: str, ttl_ms: int) -> str | None:
        """Take the lease ``key`` -> token; None when another holds it (which is then
        asked, through ``again``, to run once more before it releases)."""
        token = uuid.uuid4().hex
        if int(self.scripts.claim(keys=[key, again], args=[token, ttl_ms])) == 1:
            return token
        return None

    def release_idle(
        self, key: str, again: str, token: str, ttl_ms: int, wake: str | None = None
    ) -> int:
        """Release the lease unless a rerun was asked for meanwhile (then renew it);
        releasing clears the wake flag ``wake`` too. -> 1 released, 0 run again,
        -1 the lease is no longer ours."""
        keys = [key, again] if wake is None else [key, again, wake]
        return int(self.scripts.release_idle(keys=keys, args=[token, ttl_ms]))

    # -- generations -----------------------------------------------------------------

    def begin_rebuild(self, token: str, lease_ms: int) -> tuple[bool, int]:
        """Start building a new generation under the rebuild lease ``token`` (renew it
        with ``renew(keys.rebuild_lease, …)``) -> (started, gen). Not started: a rebuild
        whose lease is alive is running. One whose lease expired is taken over."""
        for _attempt in range(10):
            meta = self.meta()
            new = max(meta.gen or 0, meta.building or 0) + 1
            out = self.scripts.begin_rebuild(
                keys=[self.keys.meta, self.keys.rebuild_lease, *self.keys.generation_keys(new)],
                args=[
                    "" if meta.gen is None else meta.gen,
                    "" if meta.building is None else meta.building,
                    new,
                    token,
                    lease_ms,
                ],
            )
            if int(out[0]) == 1:
                dead = _s(out[2])
                if dead:
                    self.redis.unlink(*self.keys.generation_keys(dead))
                return True, new
            if int(out[0]) == 0:
                return False, _int(out[1])
        raise RuntimeError("cache meta kept changing while starting a rebuild")

    def abort_rebuild(self, gen: int) -> bool:
        ok = int(self.scripts.abort_rebuild(keys=[self.keys.meta], args=[gen])) == 1
        if ok:
            self.redis.unlink(*self.keys.generation_keys(gen))
        return ok

    def flip(self, gen: int, revision: int) -> bool:
        """Serve generation ``gen`` (atomically); the old generation is dropped."""
        old = self.scripts.flip(keys=[self.keys.meta], args=[gen, revision, time.time()])
        if old is None:
            return False
        old_s = _s(old)
        if old_s and old_s != str(gen):
            self.redis.unlink(*self.keys.generation_keys(old_s))
        self.emit([{"u": "*", "ws": "*", "rev": revision, "gen": gen}])
        return True
