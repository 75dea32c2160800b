"""The check client: permission checks answered from Redis in one round trip.

One EVALSHA resolves user -> group-set profile -> compiled entry of the asked
workspace for every question of a call (a batch of N checks is still one round
trip). The decision itself is made here, in Python, by the pure functions of
``models.access.compiled_checks`` over the fetched entries, so Redis-backed and
SQL-backed answers can never disagree.

Legacy label conditions need the resource's labels: the caller's, or else the labels
of the registered resource, which the same round trip reads from the generation's
labels hash (contract §3; caller-passed labels win, exactly as in ``AccessModel``).

Answers carry the cache revision they reflect and one of three statuses:
``allow``, ``deny`` or ``unknown`` (the cache is not built, was flushed, or is
inconsistent — never a silent deny-all or allow-all). Unknown, deactivated and
deleted users are a ``deny``.
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError

from models.access.compiled import Compiled, decode_compiled
from models.access.compiled_checks import (
    check_compiled,
    check_sync_compiled,
    visible_spaces_compiled,
)
from models.access.evaluator import ALL
from models.access.inputs import ResourceRef
from models.access.refs import SyncRef
from models.cache import scripts
from models.cache.connection import CacheRedis
from models.cache.layout import OrgKeys, decode_labels, label_field

if TYPE_CHECKING:
    from models.db.database import Database

Status = Literal["allow", "deny", "unknown"]

# reasons
NOT_BUILT: Final = "cache_not_built"
INCONSISTENT: Final = "cache_inconsistent"
STALE: Final = "cache_behind_min_revision"
UNKNOWN_USER: Final = "unknown_user"
NO_ACCESS_USER: Final = "user_inactive_or_deleted"
NO_ROLE: Final = "no_role_in_workspace"
REVOCATION_PENDING: Final = "revocation_pending"
"""The user was taken out of a group by a committed change the worker has not
recomputed yet (milliseconds, normally): the answer is ``unknown``, never the old
``allow``."""
GRANTED: Final = "granted"
NOT_GRANTED: Final = "not_granted"


@dataclass(frozen=True, slots=True)
class Check:
    """``check(user, workspace, grant, resource?)``."""

    user: str
    workspace: str
    grant: str
    resource: ResourceRef | None = None


@dataclass(frozen=True, slots=True)
class SyncCheck:
    """``check_sync(user, workspace, sync, action)`` (same-group rule)."""

    user: str
    workspace: str
    sync: SyncRef
    action: str


@dataclass(frozen=True, slots=True)
class SpacesQuery:
    """``visible_spaces(user, workspace)``."""

    user: str
    workspace: str


Query = Check | SyncCheck | SpacesQuery


@dataclass(frozen=True, slots=True)
class Answer:
    """The answer to a ``Check`` or ``SyncCheck``."""

    status: Status
    revision: int
    reason: str = ""
    source: Literal["cache", "sql"] = "cache"

    @property
    def allowed(self) -> bool:
        return self.status == "allow"

    @property
    def known(self) -> bool:
        return self.status != "unknown"


@dataclass(frozen=True, slots=True)
class SpacesAnswer:
    """The answer to a ``SpacesQuery``: Space ids, ``"all"``, or None when unknown."""

    spaces: frozenset[str] | Literal["all"] | None
    revision: int
    reason: str = ""
    source: Literal["cache", "sql"] = "cache"

    @property
    def status(self) -> Status:
        return "unknown" if self.spaces is None else "allow"

    @property
    def known(self) -> bool:
        return self.spaces is not None


Result = Answer | SpacesAnswer

# One fetched item: (status code, revision, compiled entry or None)
Item = tuple[str, int, Compiled | None]

Labels = frozenset[tuple[str, str]]
LabelLookup = Callable[[str, str, str], Labels | None]
"""``lookup(workspace, resource type, resource id)`` -> registered labels or None."""


def _fill_ref(workspace: str, ref: ResourceRef, lookup: LabelLookup) -> ResourceRef:
    if ref.labels is not None or ref.id is None:
        return ref
    labels = lookup(workspace, ref.type, ref.id)
    return ref if labels is None else dataclasses.replace(ref, labels=labels)


def with_registered_labels(query: Query, lookup: LabelLookup) -> Query:
    """``query`` with registered labels filled in wherever the caller gave none (pure).

    The same filling as ``OrgConfig.with_registered_labels`` /
    ``SyncRef.with_registered_labels`` (the ``AccessModel`` path): the resource of a
    check; the sync (by its id), its source, destination and model of a sync check.
    """
    ws = query.workspace
    if isinstance(query, Check):
        if query.resource is None:
            return query
        ref = _fill_ref(ws, query.resource, lookup)
        return query if ref is query.resource else dataclasses.replace(query, resource=ref)
    if isinstance(query, SyncCheck):
        s = query.sync
        labels = s.labels
        if labels is None and s.id is not None:
            labels = lookup(ws, "sync", s.id)
        sync = SyncRef(
            _fill_ref(ws, s.source, lookup),
            _fill_ref(ws, s.destination, lookup),
            s.space_id,
            s.id,
            labels,
            None if s.model is None else _fill_ref(ws, s.model, lookup),
        )
        return query if sync == s else dataclasses.replace(query, sync=sync)
    return query


def label_fields(queries: Sequence[Query]) -> list[str]:
    """Label-hash fields the answers to ``queries`` may need (unique, in order)."""
    wanted: dict[str, None] = {}

    def record(ws: str, rtype: str, rid: str) -> None:
        wanted[label_field(ws, rtype, rid)] = None

    for q in queries:
        with_registered_labels(q, record)
    return list(wanted)


def decide(query: Query, item: Item, revision: int, source: Literal["cache", "sql"]) -> Result:
    """The answer to ``query`` from one fetched item (pure; shared with the SQL path)."""
    code, _rev, compiled = item
    if code == "m":
        return _unknown(query, revision, INCONSISTENT)
    if code == "p":
        return _unknown(query, revision, REVOCATION_PENDING)
    if isinstance(query, SpacesQuery):
        return SpacesAnswer(visible_spaces_compiled(compiled), revision, "", source)
    if isinstance(query, Check):
        ok = check_compiled(compiled, query.grant, query.resource)
    else:
        ok = check_sync_compiled(compiled, query.sync, query.action)
    if ok:
        return Answer("allow", revision, GRANTED, source)
    reason = {"u": UNKNOWN_USER, "x": NO_ACCESS_USER, "n": NO_ROLE}.get(code, NOT_GRANTED)
    return Answer("deny", revision, reason, source)


def _revision(watermark: int, item: Item) -> int:
    """The revision an answer reflects. A pending revocation at ``R`` reflects less than
    ``R`` (the user's answer at ``R`` is not computed yet): ``min_revision=R`` waits for
    the recompute, or falls back to SQL, instead of taking ``unknown`` as final."""
    code, rev, _compiled = item
    if code == "p":
        return min(watermark, rev - 1)
    return max(watermark, rev)


def _validate(query: Query) -> None:
    """Raise ValueError (UnknownGrantError) for a malformed question, whatever the user."""
    if isinstance(query, Check):
        check_compiled(None, query.grant, query.resource)
    elif isinstance(query, SyncCheck):
        check_sync_compiled(None, query.sync, query.action)


def _unknown(query: Query, revision: int, reason: str) -> Result:
    _validate(query)  # a malformed question raises even when the cache cannot answer
    if isinstance(query, SpacesQuery):
        return SpacesAnswer(None, revision, reason)
    return Answer("unknown", revision, reason)


class CheckClient:
    """Permission checks of one organization from the Redis cache.

    ``sql`` (optional) is used when a caller asks for ``min_revision`` and the cache
    stays behind it for ``max_wait_s``: the answer is then computed from SQL with
    the same pure decision functions.
    """

    def __init__(
        self,
        client: CacheRedis,
        org_id: str,
        *,
        database: Database | None = None,
        max_wait_s: float = 0.25,
        decoded_cache_size: int = 20_000,
    ) -> None:
        self.redis = client
        self.org_id = org_id
        self.keys = OrgKeys.of(org_id)
        self.database = database
        self.max_wait_s = max_wait_s
        self._sha = client.script_load(scripts.CHECK)
        self._gen = ""
        self._gen_keys: tuple[str, ...] = self._keys_for("")
        self._decoded: OrderedDict[bytes | str, Compiled] = OrderedDict()
        self._decoded_max = decoded_cache_size
        self.round_trips = 0

    def _keys_for(self, gen: str) -> tuple[str, ...]:
        g = gen or "0"
        return (self.keys.meta, *self.keys.generation(g), self.keys.labels(g))

    # -- the one round trip -------------------------------------------------------------

    def _evalsha(self, pairs: list[str], n: int, fields: Sequence[str]) -> list[Any]:
        args: tuple[str | int, ...] = (self._gen, n, *pairs, len(fields), *fields)
        if isinstance(self.redis, RedisCluster):  # routed to the node of the org's slot
            cluster_out: list[Any] = self.redis.evalsha(
                self._sha, len(self._gen_keys), *self._gen_keys, *args
            )
            return cluster_out
        pool = self.redis.connection_pool
        conn = pool.get_connection()
        try:
            conn.send_command(  # type: ignore[no-untyped-call]
                "EVALSHA", self._sha, len(self._gen_keys), *self._gen_keys, *args
            )
            out: list[Any] = conn.read_response()
        except NoScriptError:
            raise
        except BaseException:
            conn.disconnect()  # type: ignore[no-untyped-call]
            raise
        finally:
            pool.release(conn)
        return out

    def _call(self, pairs: list[str], n: int, fields: Sequence[str] = ()) -> list[Any]:
        for _attempt in range(3):
            self.round_trips += 1
            try:
                out = self._evalsha(pairs, n, fields)
            except NoScriptError:
                self._sha = self.redis.script_load(scripts.CHECK)
                continue
            if out[0] == 1:  # generation moved: follow it and retry
                gen = out[1]
                self._gen = gen.decode() if isinstance(gen, bytes) else str(gen)
                self._gen_keys = self._keys_for(self._gen)
                continue
            return out
        return [0]  # pragma: no cover - generation flapping: answer unknown

    def _compiled(self, cid: bytes | str, blob: bytes | str) -> Compiled:
        hit = self._decoded.get(cid)
        if hit is None:
            hit = decode_compiled(blob)
            self._decoded[cid] = hit
            if len(self._decoded) > self._decoded_max:
                self._decoded.popitem(last=False)
        return hit

    def fetch(
        self, queries: Sequence[Query], fields: Sequence[str] = ()
    ) -> tuple[int, list[Item], dict[str, Labels]] | None:
        """Items for ``queries`` and the registered labels of ``fields`` (absent: not
        registered), in one round trip; None when the cache is not built."""
        pairs: list[str] = []
        for q in queries:
            pairs.append(q.user)
            pairs.append(q.workspace)
        out = self._call(pairs, len(queries), fields)
        if out[0] != 2:
            return None
        wm = int(out[1])
        items: list[Item] = []
        end = 2 + 4 * len(queries)
        for k in range(2, end, 4):
            code = out[k]
            code_s = code.decode() if isinstance(code, bytes) else str(code)
            compiled = self._compiled(out[k + 2], out[k + 3]) if code_s == "c" else None
            items.append((code_s, int(out[k + 1]), compiled))
        labels = {
            f: decode_labels(v) for f, v in zip(fields, out[end:], strict=False) if v is not None
        }
        return wm, items, labels

    # -- public API ---------------------------------------------------------------------

    def batch(self, queries: Sequence[Query], *, min_revision: int | None = None) -> list[Result]:
        """Answers to ``queries``, in order, from one Redis round trip.

        Malformed questions (unknown grant, wrong resource type) raise ValueError.
        """
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
            from models.cache.fallback import answer_from_sql

            return answer_from_sql(self.database, self.org_id, queries)
        return [
            r if r.revision >= min_revision else _unknown(q, r.revision, STALE)
            for q, r in zip(queries, results, strict=True)
        ]

    def _from_cache(self, queries: Sequence[Query]) -> list[Result]:
        fields = label_fields(queries)
        fetched = self.fetch(queries, fields)
        if fetched is None:
            return [_unknown(q, 0, NOT_BUILT) for q in queries]
        wm, items, labels = fetched
        if fields:

            def lookup(ws: str, rtype: str, rid: str) -> Labels | None:
                return labels.get(label_field(ws, rtype, rid))

            queries = [with_registered_labels(q, lookup) for q in queries]
        return [
            decide(q, item, _revision(wm, item), "cache")
            for q, item in zip(queries, items, strict=True)
        ]

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
        gen, wm = self.redis.hmget(self.keys.meta, ["gen", "wm"])
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
