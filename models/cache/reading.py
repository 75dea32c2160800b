"""Layer: pure. How a check client reads the permission cache, without I/O (docs/redis-layout.md,
"Reading"); the blocking ``CheckClient`` and the asyncio ``AsyncCheckClient`` only move
the bytes.

A call (one check or a batch) is one round trip, one of two Lua scripts
(``models.cache.scripts``):

- ``READ``, the usual case: the meta fields ``gen wm sv``, the users' pointers and the
  registered labels asked for — two or three HMGETs, a few microseconds inside Redis.
  The group sets the pointers lead to and the compiled blobs of the asked workspaces
  come from this process's memory: blobs are content-addressed (a cid's blob never
  changes), and set values are kept only for the generation ``gen`` and set version
  ``sv`` they were read at — every overwrite of a set value raises ``sv`` in the same
  atomic script, and ``READ`` reads ``sv`` with the pointers, so a kept value is the
  stored one, exactly.
- ``CHECK``, when this process lacks a set or a blob the answer needs (first use, a set
  changed, the generation flipped): it reads everything the call needs atomically, and
  the sets and blobs are kept for the next calls. Which script a call starts with is
  picked from the set each user pointed at when last read (a hint, never an answer); a
  wrong guess costs a second round trip.

Every answer comes from one atomic read of Redis made for it: nothing Redis may have
changed is answered from memory, so no answer is older than its request.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from models.access.compiled import Compiled, decode_compiled
from models.cache.layout import NO_ACCESS, PENDING, OrgKeys, decode_labels
from models.cache.results import (
    INCONSISTENT,
    NOT_BUILT,
    Item,
    Labels,
    Query,
    Result,
    answer,
    label_fields,
    not_built,
    refuse_unknown,
    workspaces_of,
)

READ: Final = "read"
FILL: Final = "fill"
_NO_SET: Final = frozenset({"", NO_ACCESS, PENDING})
HINTS_MAX: Final = 200_000


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Retry(Exception):
    """The generation moved (or, rarely, kept data went missing): plan the call again."""


@dataclass(slots=True)
class Plan:
    """One call: its queries, the distinct users and label fields, and how it reads."""

    queries: Sequence[Query]
    users: list[str]
    workspaces: list[str]
    fields: list[str]
    gen: str
    mode: str


class Reader:
    """What one process keeps of one organization's cache, and the read protocol."""

    def __init__(self, org_id: str, *, decoded_cache_size: int = 20_000) -> None:
        self.keys = OrgKeys.of(org_id)
        self.gen = ""
        self.sv = ""
        self._sets: dict[str, str] = {}
        """set key -> stored value, valid for (``gen``, ``sv``) only"""
        self._blobs: OrderedDict[str, Compiled] = OrderedDict()
        self._max = decoded_cache_size
        self._hints: dict[str, str] = {}
        """user -> the set key it pointed at when last read (picks the plan only)"""

    # -- planning ---------------------------------------------------------------------

    def plan(self, queries: Sequence[Query]) -> Plan:
        """The fast read when every question's user pointed, when last seen, at a set
        (and blob) this process keeps; else ``CHECK``. A hint only picks the plan: the
        answer always comes from what the round trip reads."""
        users = list(dict.fromkeys(q.user for q in queries))
        fields = label_fields(queries)
        mode = READ if self.gen and all(self._kept(q) for q in queries) else FILL
        return Plan(queries, users, workspaces_of(queries), fields, self.gen or "0", mode)

    def _kept(self, q: Query) -> bool:
        hint = self._hints.get(q.user)
        if hint is None:
            return False
        if hint in _NO_SET:
            return True
        sval = self._sets.get(hint)
        if sval is None:
            return False
        at = sval.find(f"\n{q.workspace}\t")
        if at < 0:
            return True
        start = at + len(q.workspace) + 2
        return sval[start : sval.find("\n", start)] in self._blobs

    def read_call(self, plan: Plan) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of the ``READ`` script for ``plan``."""
        g = plan.gen
        keys = [self.keys.meta, self.keys.users(g), self.keys.labels(g), self.keys.workspaces(g)]
        ws = plan.workspaces
        return keys, [plan.gen, len(plan.users), *plan.users, len(ws), *ws, *plan.fields]

    def fill_call(self, plan: Plan) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of the ``CHECK`` script for ``plan``."""
        g = plan.gen
        keys = [
            self.keys.meta,
            *self.keys.generation(g),
            self.keys.labels(g),
            self.keys.workspaces(g),
        ]
        args: list[Any] = [plan.gen, len(plan.queries)]
        for q in plan.queries:
            args.append(q.user)
            args.append(q.workspace)
        args.append(len(plan.fields))
        args.extend(plan.fields)
        args.append(len(plan.workspaces))
        args.extend(plan.workspaces)
        return keys, args

    # -- answers ----------------------------------------------------------------------

    def _moved(self, gen: Any) -> None:
        self.gen = _s(gen)
        self.sv = ""
        self._sets.clear()

    def _blob(self, cid: str, blob: Any = None) -> Compiled | None:
        hit = self._blobs.get(cid)
        if hit is None and blob is not None:
            hit = decode_compiled(blob)
            self._blobs[cid] = hit
            if len(self._blobs) > self._max:
                self._blobs.popitem(last=False)
        return hit

    def _keep_set(self, key: str, value: str) -> None:
        if len(self._sets) >= self._max:
            self._sets.clear()
        self._sets[key] = value

    def absorb_read(self, plan: Plan, out: Any) -> list[Result] | None:
        """Answers from the ``READ`` script's reply; None when this process lacks a set
        or blob they need (read the call again with ``CHECK``). Raises ``Retry`` when
        the generation moved."""
        gen, wm, sv = out[0]
        if gen is None:
            self._moved("")
            return not_built(plan.queries)
        if _s(gen) != plan.gen:
            self._moved(gen)
            raise Retry
        refuse_unknown(plan.workspaces, out[3])
        sv_s = "0" if sv is None else _s(sv)
        if sv_s != self.sv:
            self._sets.clear()
            self.sv = sv_s
            return None
        users = {u: None if v is None else _s(v) for u, v in zip(plan.users, out[1], strict=True)}
        labels = (
            {}
            if not plan.fields
            else {f: decode_labels(v) for f, v in zip(plan.fields, out[2], strict=True) if v}
        )
        items: list[Item] = []
        for q in plan.queries:
            item = self._item(q.user, users[q.user], q.workspace, None)
            if item is None:
                return None
            items.append(item)
        return answer(plan.queries, items, int(wm or 0), labels)

    def absorb_fill(self, plan: Plan, out: Any) -> list[Result]:
        """Answers from the ``CHECK`` script's reply (and keep what it read)."""
        code = int(out[0])
        if code == 0:
            self._moved("")
            return not_built(plan.queries)
        if code == 1:
            self._moved(out[1])
            raise Retry
        wm, sv = int(out[1]), _s(out[2])
        if sv != self.sv or not self.gen:
            self._sets.clear()
            self.sv = sv
        k = 3
        users: dict[str, str | None] = {}
        for _ in range(int(out[k])):
            users[_s(out[k + 1])] = None if out[k + 2] is None else _s(out[k + 2])
            k += 2
        k += 1
        fetched: dict[str, str] = {}
        for _ in range(int(out[k])):
            skey, value = _s(out[k + 1]), out[k + 2]
            if value is not None:
                fetched[skey] = _s(value)
                self._keep_set(skey, fetched[skey])
            k += 2
        k += 1
        for _ in range(int(out[k])):
            if out[k + 2] is not None:
                self._blob(_s(out[k + 1]), out[k + 2])
            k += 2
        k += 1
        m = len(plan.fields)
        refuse_unknown(plan.workspaces, out[k + m :])
        labels = {
            f: decode_labels(v) for f, v in zip(plan.fields, out[k : k + m], strict=True) if v
        }
        items: list[Item] = []
        for q in plan.queries:
            item = self._item(q.user, users.get(q.user), q.workspace, fetched)
            items.append(item if item is not None else ("m", 0, None))
        return answer(plan.queries, items, wm, labels)

    def _hint(self, user: str, skey: str) -> None:
        hints = self._hints
        if hints.get(user) != skey:
            if len(hints) >= HINTS_MAX:
                hints.clear()
            hints[user] = skey

    def _item(
        self, user: str, value: str | None, ws: str, fetched: dict[str, str] | None
    ) -> Item | None:
        """The fetched item of one question; None when a kept set or blob is missing."""
        if value is None:
            self._hint(user, "")
            return ("u", 0, None)
        skey, _, rev_s = value.rpartition("|")
        urev = int(rev_s)
        self._hint(user, skey)
        if skey == NO_ACCESS:
            return ("x", urev, None)
        if skey == PENDING:
            return ("p", urev, None)
        sval = self._sets.get(skey) if fetched is None else fetched.get(skey)
        if sval is None:
            return None if fetched is None else ("m", urev, None)
        nl = sval.find("\n")
        rev = min(urev, int(sval[:nl]))
        at = sval.find(f"\n{ws}\t")
        if at < 0:
            return ("n", rev, None)
        start = at + len(ws) + 2
        cid = sval[start : sval.find("\n", start)]
        compiled = self._blob(cid)
        if compiled is None:
            return None if fetched is None else ("m", rev, None)
        return ("c", rev, compiled)


__all__ = [
    "FILL",
    "INCONSISTENT",
    "NOT_BUILT",
    "READ",
    "Labels",
    "Plan",
    "Reader",
    "Retry",
]
