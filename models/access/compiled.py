"""Layer: pure. The canonical compact form of a group set's permissions in one workspace.

This is what the worker stores in Redis and the check client decides from
(``compiled_checks.py``). It depends only on (group set, org config).

Tokens
    v2 workspace grant: its short code (``csr`` = create_sources); v2 resource
    grant: ``<code>:<resource id or *>`` (``cs:dst_1``, ``vd:*``); legacy
    permission: ``<type code>.<action code>`` (``y.s`` = sync start). Codes are in
    ``grants.py``.

Wire format (``encode_compiled``): a compact JSON array, trailing defaults trimmed::

    [1, model, flags, spaces, tokens, legacy_role, pairs, limited, limits, cats, conditional]

    model        "2" (v2) or "L" (legacy)
    flags        bit 1 admin, bit 2 approvals_required, bit 4 tokens are the built-in
                 legacy role's (expanded on decode)
    spaces       null = every Space (admin or Spaces off), else sorted Space ids
    tokens       unlimited grant tokens (union over groups): "@editor" / "@draft_editor"
                 stand for that pre-built role's whole token set, then the rest sorted
    legacy_role  the chosen legacy role id
    pairs        null = one group holds every sync-pair grant (use tokens), else per-group
                 [[tokens], [[base, k], ...]] lists for the same-group sync rule
    limited      [[base token, k], ...] subset-limited grants (k indexes limits)
    limits       [[[category, [values]], ...], ...]
    cats         [[parent model id, [[category, required 0/1], ...]], ...] for limited grants
    conditional  [[type, [actions], [[label key, [values]], ...]], ...] legacy label statements

``encode_workspace_map`` stores a whole ``{workspace_id: Compiled}`` with identical
entries shared: ``{"c": [compiled...], "w": {workspace_id: index}}``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any, Final

from .catalogue import (
    LEGACY_BUILTIN,
    V2_PREBUILT,
    legacy_permissions,
    normalize_grants,
    v2_raw_grants,
)
from .grants import WORKSPACE, legacy_token, v2_code
from .subsets import CategorySpec, SubsetLimit

FORMAT_VERSION: Final = 1
FLAG_ADMIN: Final = 1
FLAG_APPROVALS: Final = 2
FLAG_BUILTIN_LEGACY: Final = 4

LimitedGrant = tuple[str, int]
PairSet = tuple[frozenset[str], frozenset[LimitedGrant]]
Conditional = tuple[str, frozenset[str], tuple[tuple[str, frozenset[str]], ...]]


@dataclass(frozen=True)
class Compiled:
    """Permissions of a group set in one workspace, in decision-ready form."""

    model: str
    admin: bool = False
    approvals: bool = False
    spaces: frozenset[str] | None = None
    tokens: frozenset[str] = frozenset()
    pairs: tuple[PairSet, ...] | None = None
    limited: frozenset[LimitedGrant] = frozenset()
    limits: tuple[SubsetLimit, ...] = ()
    categories: tuple[tuple[str, tuple[CategorySpec, ...]], ...] = ()
    legacy_role: str | None = None
    conditional: tuple[Conditional, ...] = ()
    builtin_legacy: bool = field(default=False, compare=False)

    @cached_property
    def encoded(self) -> str:
        """The wire form (memoized; see :func:`encode_compiled`)."""
        return json.dumps(compiled_to_json(self), separators=(",", ":"), ensure_ascii=False)

    @cached_property
    def limited_by_base(self) -> dict[str, tuple[int, ...]]:
        out: dict[str, list[int]] = {}
        for base, k in sorted(self.limited):
            out.setdefault(base, []).append(k)
        return {b: tuple(v) for b, v in out.items()}

    @cached_property
    def categories_by_model(self) -> dict[str, tuple[CategorySpec, ...]]:
        return dict(self.categories)

    @cached_property
    def pair_sets(self) -> tuple[PairSet, ...]:
        """Per-group sets for the same-group rule (the union when one group covers all)."""
        if self.pairs is not None:
            return self.pairs
        return ((self.tokens, self.limited),)


# --- wire format ----------------------------------------------------------------

# Macros: the token set of a pre-built v2 role (all on "*") is written as one token.
MACROS: Final[tuple[str, ...]] = ("editor", "draft_editor")


@lru_cache(maxsize=8)
def macro_tokens(role_id: str, approvals: bool) -> frozenset[str]:
    """Tokens of a pre-built v2 role in a workspace with/without approval flows."""
    out: set[str] = set()
    for scope, rid, name, _ in normalize_grants(v2_raw_grants(V2_PREBUILT[role_id]), approvals):
        code = v2_code(scope, name)
        out.add(code if scope == WORKSPACE else f"{code}:{rid}")
    return frozenset(out)


def _compress(tokens: frozenset[str], approvals: bool) -> list[str]:
    rest = set(tokens)
    macros: list[str] = []
    for role_id in MACROS:
        expanded = macro_tokens(role_id, approvals)
        if expanded <= rest:
            rest -= expanded
            macros.append(f"@{role_id}")
    return macros + sorted(rest)


def _expand(tokens: list[str], approvals: bool) -> frozenset[str]:
    out: set[str] = set()
    for t in tokens:
        if t.startswith("@"):
            out |= macro_tokens(t[1:], approvals)
        else:
            out.add(t)
    return frozenset(out)


def _limit_json(limit: SubsetLimit) -> list[Any]:
    return [[cat, list(values)] for cat, values in limit.chosen]


def _cond_json(conds: tuple[tuple[str, frozenset[str]], ...]) -> list[Any]:
    return [[k, sorted(v)] for k, v in conds]


def compiled_to_json(c: Compiled) -> list[Any]:
    flags = (
        (FLAG_ADMIN if c.admin else 0)
        | (FLAG_APPROVALS if c.approvals else 0)
        | (FLAG_BUILTIN_LEGACY if c.builtin_legacy else 0)
    )
    tokens: list[str]
    if c.model == "legacy":
        tokens = [] if c.builtin_legacy else sorted(c.tokens)
    else:
        tokens = _compress(c.tokens, c.approvals)
    pairs = (
        None
        if c.pairs is None
        else [[sorted(t), sorted([b, k] for b, k in lim)] for t, lim in c.pairs]
    )
    conditional = (
        []
        if c.builtin_legacy
        else [[t, sorted(a), _cond_json(conds)] for t, a, conds in c.conditional]
    )
    out: list[Any] = [
        FORMAT_VERSION,
        "2" if c.model == "v2" else "L",
        flags,
        None if c.spaces is None else sorted(c.spaces),
        tokens,
        c.legacy_role,
        pairs,
        sorted([b, k] for b, k in c.limited),
        [_limit_json(lim) for lim in c.limits],
        [[p, [[n, int(r)] for n, r in cats]] for p, cats in c.categories],
        conditional,
    ]
    defaults: list[Any] = [None, None, 0, None, [], None, None, [], [], [], []]
    while len(out) > 3 and out[-1] == defaults[len(out) - 1]:
        out.pop()
    return out


def encode_compiled(c: Compiled) -> str:
    """Deterministic compact string for one compiled entry."""
    return c.encoded


def _builtin_legacy_parts(role_id: str) -> tuple[frozenset[str], tuple[Conditional, ...]]:
    perms = legacy_permissions(LEGACY_BUILTIN[role_id])
    return frozenset(legacy_token(t, a) for t, a in perms.actions), perms.conditional


def compiled_from_json(data: list[Any]) -> Compiled:
    if not data or data[0] != FORMAT_VERSION:
        raise ValueError(f"unsupported compiled format {data[:1]!r}")
    full: list[Any] = [*data, *([None] * (11 - len(data)))]
    _, model, flags, spaces, tokens, legacy_role, pairs, limited, limits, cats, cond = full
    builtin = bool(flags & FLAG_BUILTIN_LEGACY)
    token_set = (
        _expand(tokens or [], bool(flags & FLAG_APPROVALS))
        if model == "2"
        else (frozenset(tokens or ()))
    )
    conditional: tuple[Conditional, ...] = tuple(
        (t, frozenset(a), tuple((k, frozenset(v)) for k, v in conds)) for t, a, conds in cond or ()
    )
    if builtin:
        token_set, conditional = _builtin_legacy_parts(str(legacy_role))
    return Compiled(
        model="v2" if model == "2" else "legacy",
        admin=bool(flags & FLAG_ADMIN),
        approvals=bool(flags & FLAG_APPROVALS),
        spaces=None if spaces is None else frozenset(spaces),
        tokens=token_set,
        pairs=None
        if pairs is None
        else tuple((frozenset(t), frozenset((b, int(k)) for b, k in lim)) for t, lim in pairs),
        limited=frozenset((b, int(k)) for b, k in limited or ()),
        limits=tuple(SubsetLimit(tuple((c, tuple(v)) for c, v in lim)) for lim in limits or ()),
        categories=tuple((p, tuple((n, bool(r)) for n, r in cs)) for p, cs in cats or ()),
        legacy_role=legacy_role,
        conditional=conditional,
        builtin_legacy=builtin,
    )


def decode_compiled(text: str | bytes) -> Compiled:
    """Inverse of :func:`encode_compiled`."""
    data = json.loads(text)
    if not isinstance(data, list):
        raise ValueError("compiled form must be a JSON array")
    return compiled_from_json(data)


def encode_workspace_map(entries: Mapping[str, Compiled]) -> bytes:
    """All workspaces of one group set; identical entries stored once."""
    encoded = {ws: encode_compiled(c) for ws, c in entries.items()}
    distinct = sorted(set(encoded.values()))
    index = {s: i for i, s in enumerate(distinct)}
    body = ",".join(distinct)
    ws_part = json.dumps(
        {ws: index[s] for ws, s in sorted(encoded.items())},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return f'{{"c":[{body}],"w":{ws_part}}}'.encode()


def decode_workspace_map(blob: bytes | str) -> dict[str, Compiled]:
    data = json.loads(blob)
    compiled = [compiled_from_json(c) for c in data["c"]]
    return {ws: compiled[i] for ws, i in data["w"].items()}


def group_set_key(groups: Iterable[str]) -> str:
    """Short deterministic key of a group set (users with equal group sets share it)."""
    digest = hashlib.blake2b("\x1f".join(sorted(set(groups))).encode(), digest_size=12).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")
