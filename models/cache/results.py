"""Layer: pure. Questions to the permission cache and their answers (pure; no I/O).

The decision is made by the pure functions of ``models.access.compiled_checks`` over
the fetched compiled entry, so Redis-backed and SQL-backed answers can never disagree,
and a deny carries the same reason code as ``explain`` (``models.access.reasons``).

Legacy label conditions need the resource's labels: the caller's, or else the labels of
the registered resource (contract §3; caller-passed labels win, as in ``AccessModel``).

Answers carry the cache revision they reflect and one of three statuses: ``allow``,
``deny`` or ``unknown`` (the cache is not built, was flushed, is inconsistent, behind a
``min_revision``, or a revocation is pending — never a silent deny-all or allow-all).
Unknown, deactivated and deleted users are a ``deny``; a workspace the organization does
not have is an error (``UnknownWorkspaceError``), whoever asks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from models.access.compiled import Compiled
from models.access.compiled_checks import (
    check_compiled_reason,
    check_sync_compiled_reason,
    visible_spaces_compiled,
)
from models.access.errors import ValidationError
from models.access.inputs import ResourceRef
from models.access.reasons import (
    GRANTED,
    NO_ROLE_IN_WORKSPACE,
    UNKNOWN_USER,
    USER_INACTIVE_OR_DELETED,
)
from models.access.refs import SyncRef
from models.cache.layout import label_field

Status = Literal["allow", "deny", "unknown"]

# reasons of an ``unknown`` (a deny's come from models.access.reasons)
NOT_BUILT: Final = "cache_not_built"
INCONSISTENT: Final = "cache_inconsistent"
STALE: Final = "cache_behind_min_revision"
REVOCATION_PENDING: Final = "revocation_pending"
"""The user was taken out of a group by a committed change the worker has not
recomputed yet (milliseconds, normally): the answer is ``unknown``, never the old
``allow``."""
UNKNOWN_REASONS: Final = (NOT_BUILT, INCONSISTENT, STALE, REVOCATION_PENDING)

NO_ACCESS_USER: Final = USER_INACTIVE_OR_DELETED
NO_ROLE: Final = NO_ROLE_IN_WORKSPACE


class UnknownWorkspaceError(ValidationError):
    """A question names a workspace the organization does not have: an error naming it,
    not a deny (a typo in a workspace id must not read as "no access")."""

    def __init__(self, workspace: str) -> None:
        super().__init__("workspace", f"no workspace {workspace!r} in this organization")
        self.workspace = workspace


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

Item = tuple[str, int, Compiled | None]
"""One fetched item: (status code, revision, compiled entry or None). Codes: ``c``
compiled entry, ``n`` no role in the workspace, ``x`` deactivated/deleted, ``u`` unknown
user, ``m`` missing profile (inconsistent: unknown), ``p`` revocation pending."""

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


def workspaces_of(queries: Sequence[Query]) -> list[str]:
    """The distinct workspaces ``queries`` ask about, in order."""
    return list(dict.fromkeys(q.workspace for q in queries))


def refuse_unknown(workspaces: Sequence[str], known: Sequence[object]) -> None:
    """Raise ``UnknownWorkspaceError`` for the first of ``workspaces`` Redis did not find
    (``known``: the workspace set's written flag, then one flag per workspace; a set
    never written refuses nothing)."""
    if not known or not int(str(known[0])):
        return
    for ws, flag in zip(workspaces, known[1:], strict=True):
        if not int(str(flag)):
            raise UnknownWorkspaceError(ws)


def label_fields(queries: Sequence[Query]) -> list[str]:
    """Label-hash fields the answers to ``queries`` may need (unique, in order)."""
    wanted: dict[str, None] = {}

    def record(ws: str, rtype: str, rid: str) -> None:
        wanted[label_field(ws, rtype, rid)] = None

    for q in queries:
        if not (isinstance(q, Check) and q.resource is None):
            with_registered_labels(q, record)
    return list(wanted)


def decide(query: Query, item: Item, revision: int, source: Literal["cache", "sql"]) -> Result:
    """The answer to ``query`` from one fetched item (pure; shared with the SQL path)."""
    code, _rev, compiled = item
    if code == "m":
        return unknown(query, revision, INCONSISTENT)
    if code == "p":
        return unknown(query, revision, REVOCATION_PENDING)
    if isinstance(query, SpacesQuery):
        return SpacesAnswer(visible_spaces_compiled(compiled), revision, "", source)
    if isinstance(query, Check):
        reason = check_compiled_reason(compiled, query.grant, query.resource)
    else:
        reason = check_sync_compiled_reason(compiled, query.sync, query.action)
    if reason == GRANTED:
        return Answer("allow", revision, GRANTED, source)
    if code == "u":
        reason = UNKNOWN_USER
    elif code == "x":
        reason = USER_INACTIVE_OR_DELETED
    return Answer("deny", revision, reason, source)


def revision_of(watermark: int, item: Item) -> int:
    """The revision an answer reflects: ``max(wm, min(user rev, set rev))``. A pending
    revocation at ``R`` reflects less than ``R`` (the user's answer at ``R`` is not
    computed yet): ``min_revision=R`` waits for the recompute, or falls back to SQL,
    instead of taking ``unknown`` as final."""
    code, rev, _compiled = item
    if code == "p":
        return min(watermark, rev - 1)
    return max(watermark, rev)


def validate(query: Query) -> None:
    """Raise ValueError (UnknownGrantError) for a malformed question, whatever the user."""
    if isinstance(query, Check):
        check_compiled_reason(None, query.grant, query.resource)
    elif isinstance(query, SyncCheck):
        check_sync_compiled_reason(None, query.sync, query.action)


def unknown(query: Query, revision: int, reason: str) -> Result:
    validate(query)  # a malformed question raises even when the cache cannot answer
    if isinstance(query, SpacesQuery):
        return SpacesAnswer(None, revision, reason)
    return Answer("unknown", revision, reason)


def not_built(queries: Sequence[Query]) -> list[Result]:
    return [unknown(q, 0, NOT_BUILT) for q in queries]


def answer(
    queries: Sequence[Query], items: Sequence[Item], wm: int, labels: Mapping[str, Labels]
) -> list[Result]:
    """Answers from fetched items, the watermark and the registered labels read."""
    if labels:

        def lookup(ws: str, rtype: str, rid: str) -> Labels | None:
            return labels.get(label_field(ws, rtype, rid))

        queries = [with_registered_labels(q, lookup) for q in queries]
    return [
        decide(q, item, revision_of(wm, item), "cache")
        for q, item in zip(queries, items, strict=True)
    ]


def behind(queries: Sequence[Query], results: list[Result], min_revision: int) -> list[Result]:
    """``results`` with every answer older than ``min_revision`` made ``unknown``."""
    return [
        r if r.revision >= min_revision else unknown(q, r.revision, STALE)
        for q, r in zip(queries, results, strict=True)
    ]
