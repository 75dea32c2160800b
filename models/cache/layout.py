"""Layer: pure. The Redis key layout of the permission cache (documented in docs/redis-layout.md).

Every key of an organization starts with ``idsync:{<org_id>}:`` — the braces are a
Redis Cluster hash tag, so all keys of one organization live in one slot and the
multi-key Lua scripts below work unchanged on Redis Cluster.

Per organization::

    idsync:{org}:meta            HASH   gen, building, wm, cursor, cfgrev, built_at
    idsync:{org}:g<gen>:u        HASH   user id   -> "<set key>|<rev>"   ("-" = no access,
                                        "?" = revocation pending: answer unknown)
    idsync:{org}:g<gen>:s        HASH   set key   -> "<rev>\\n<ws>\\t<cid>\\n<ws>\\t<cid>…"
    idsync:{org}:g<gen>:c        HASH   cid       -> encoded ``Compiled`` (content-addressed)
    idsync:{org}:g<gen>:l        HASH   "<ws>|<type>|<id>" -> encoded labels of a registered
                                        resource; "#rev" -> revision the hash reflects
    idsync:{org}:g<gen>:w        SET    the organization's workspace ids, and "#" (the set is
                                        written: a check naming a workspace not in it is
                                        an error); written with the labels hash, under its
                                        "#rev"
    idsync:{org}:changes         STREAM u, ws, rev  (capped, for local-cache invalidation)
    idsync:{org}:dirty:<lane>    ZSET   user/group id -> earliest unapplied revision
    idsync:{org}:dirty:<lane>:hi ZSET   user/group id -> latest marked revision
    idsync:{org}:drain:<w>:wake  STRING wake-up flag (PX): a drain task is on its way
    idsync:{org}:drain:<w>:lease STRING drain lease (token, PX)
    idsync:{org}:drain:<w>:again STRING rerun request for the lease holder (PX)
    idsync:{org}:drain:<w>:traces LIST  traceparents of traced writes waiting for drain <w>
                                        (tracing on only; capped, PX; worker/write_links.py)
    idsync:{org}:ingest:lease    STRING outbox catch-up lease; ingest:again its rerun request
    idsync:{org}:rebuild:lease   STRING the running rebuild's lease (token, short PX, renewed)
    idsync:{org}:rebuild         HASH   progress of the running / last full rebuild
    idsync:{org}:rebuild:done    SET    finished chunk numbers of the running rebuild
    idsync:{org}:reconcile       HASH   counts of the last reconcile
    idsync:{org}:stats           HASH   counters (members recomputed per lane)

The meta hash doubles as the "cache built" marker: no ``gen`` field means the cache
was never built, was flushed or is being rebuilt from nothing, and every check then
answers ``unknown``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

PREFIX: Final = "idsync"
NO_ACCESS: Final = "-"
"""Set key of a deactivated or deleted user (a revision-carrying tombstone)."""
PENDING: Final = "?"
"""Set key of a user taken out of a group by a committed change that the worker has not
recomputed yet: checks answer ``unknown`` (never the ``allow`` the user had) until the
recompute, at a revision at least as new, replaces it."""

LABELS_REV: Final = "#rev"
"""Field of the labels hash holding the revision of the SQL snapshot it reflects."""
WORKSPACES_WRITTEN: Final = "#"
"""Member of every written workspace set (not a workspace id: those never start with
``#``): a set without it was never written (a cache built before the set existed), and
then no check is refused for its workspace."""

STREAM_MAXLEN: Final = 100_000
STREAM_USER_EVENTS_MAX: Final = 1000
"""A profile change touching more users than this emits one ``u=*`` event per workspace."""

LANE_REVOKE: Final = "r"
"""Users whose permissions may shrink: removals from groups, deactivation, deletion."""
LANE_GRANT: Final = "g"
"""Users whose permissions may grow: creations, additions, reactivation, edits."""
LANE_CONFIG: Final = "c"
"""Groups whose bindings / roles / workspace settings changed (recompile their sets)."""
ALL_GROUPS: Final = "*"
"""Member of the config lane meaning "every group set of the organization"."""

_ORG_ID = re.compile(r"^[^{}\s]{1,64}$")


def check_org_id(org_id: str) -> str:
    if not _ORG_ID.match(org_id):
        raise ValueError(f"organization id {org_id!r} cannot be used in a Redis key")
    return org_id


@dataclass(frozen=True, slots=True)
class OrgKeys:
    """All key names of one organization (pure string building, no I/O)."""

    org_id: str

    @classmethod
    def of(cls, org_id: str) -> OrgKeys:
        return cls(check_org_id(org_id))

    @property
    def base(self) -> str:
        return f"{PREFIX}:{{{self.org_id}}}"

    @property
    def meta(self) -> str:
        return f"{self.base}:meta"

    def users(self, gen: int | str) -> str:
        return f"{self.base}:g{gen}:u"

    def sets(self, gen: int | str) -> str:
        return f"{self.base}:g{gen}:s"

    def compiled(self, gen: int | str) -> str:
        return f"{self.base}:g{gen}:c"

    def labels(self, gen: int | str) -> str:
        """Registered resource labels of a generation (legacy label conditions)."""
        return f"{self.base}:g{gen}:l"

    def workspaces(self, gen: int | str) -> str:
        """The organization's workspace ids of a generation (``WORKSPACES_WRITTEN`` too)."""
        return f"{self.base}:g{gen}:w"

    def generation(self, gen: int | str) -> tuple[str, str, str]:
        return self.users(gen), self.sets(gen), self.compiled(gen)

    def generation_keys(self, gen: int | str) -> tuple[str, str, str, str, str]:
        """Every key of one generation (to create, drop or unlink it as a whole)."""
        return (*self.generation(gen), self.labels(gen), self.workspaces(gen))

    @property
    def stream(self) -> str:
        return f"{self.base}:changes"

    def dirty(self, lane: str) -> str:
        return f"{self.base}:dirty:{lane}"

    def dirty_hi(self, lane: str) -> str:
        return f"{self.base}:dirty:{lane}:hi"

    def wake(self, lane: str) -> str:
        return f"{self.base}:drain:{lane}:wake"

    def lease(self, lane: str) -> str:
        return f"{self.base}:drain:{lane}:lease"

    def again(self, lane: str) -> str:
        """Rerun request for the holder of the drain lease ``lane`` (see ``CLAIM``)."""
        return f"{self.base}:drain:{lane}:again"

    def traces(self, lane: str) -> str:
        """Trace contexts of writes waiting for drain ``lane`` (``worker.write_links``)."""
        return f"{self.base}:drain:{lane}:traces"

    @property
    def ingest_lease(self) -> str:
        return f"{self.base}:ingest:lease"

    @property
    def ingest_again(self) -> str:
        return f"{self.base}:ingest:again"

    @property
    def rebuild_lease(self) -> str:
        return f"{self.base}:rebuild:lease"

    @property
    def rebuild(self) -> str:
        return f"{self.base}:rebuild"

    @property
    def rebuild_done(self) -> str:
        return f"{self.base}:rebuild:done"

    @property
    def reconcile(self) -> str:
        return f"{self.base}:reconcile"

    @property
    def stats(self) -> str:
        return f"{self.base}:stats"


def beat_lock_key(name: str) -> str:
    """The beat leader lock (one key, not per organization)."""
    return f"{PREFIX}:beat:{name}"


def encode_user(set_key: str, revision: int) -> str:
    return f"{set_key}|{revision}"


def decode_user(value: str) -> tuple[str, int]:
    set_key, _, rev = value.rpartition("|")
    return set_key, int(rev)


def encode_set(revision: int, entries: dict[str, str]) -> str:
    """``{workspace id: cid}`` of one group set, with the revision it was compiled at."""
    parts = [str(revision)]
    parts.extend(f"{ws}\t{cid}" for ws, cid in sorted(entries.items()))
    return "\n".join(parts) + "\n"


def decode_set(value: str) -> tuple[int, dict[str, str]]:
    head, *rest = value.split("\n")
    entries: dict[str, str] = {}
    for line in rest:
        if line:
            ws, _, cid = line.partition("\t")
            entries[ws] = cid
    return int(head), entries


def label_field(workspace_id: str, resource_type: str, resource_id: str) -> str:
    """Field of a registered resource in the labels hash: ``<ws>|<type>|<id>``.

    Workspace ids (``[A-Za-z0-9][A-Za-z0-9_.-]*``) and resource types never contain
    ``|``, so the id (anything) comes last and the field is unambiguous.
    """
    return f"{workspace_id}|{resource_type}|{resource_id}"


def label_field_workspace(field: str) -> str:
    return field.partition("|")[0]


def encode_labels(labels: Iterable[tuple[str, str]]) -> str:
    """Labels as a JSON array of ``[key, value]`` pairs, sorted (one encoding per label set)."""
    return json.dumps(sorted([k, v] for k, v in labels), separators=(",", ":"))


def decode_labels(value: str | bytes) -> frozenset[tuple[str, str]]:
    pairs = json.loads(value)
    return frozenset((str(k), str(v)) for k, v in pairs)
