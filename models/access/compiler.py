"""Layer: pure. Fast path: (group set, org config) -> ``{workspace_id: Compiled}``.

Independent of the reference evaluator (it never builds provenance): per
(group, root workspace) pieces are computed once and memoized, so compiling a
group set is a union of a few precomputed frozensets per workspace. Workspaces
where the group set has no role are absent (absent = no access).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from .catalogue import (
    ADMIN,
    L_ADMIN,
    legacy_permissions,
    legacy_rank,
    normalize_grants,
    v2_raw_grants,
)
from .compiled import Compiled, LimitedGrant, PairSet
from .grants import V2_GRANT_CODES, WORKSPACE, legacy_token, v2_code
from .inputs import OrgConfig, User, Workspace
from .roles import WILDCARD, LegacyRole, V2Role
from .subsets import CategorySpec, SubsetLimit
from .sync_rules import two_sided_grants

# Grants that take part in a two-sided sync requirement (rule v2.no_mix_and_match).
PAIR_CODES: Final[frozenset[str]] = frozenset(
    code for (_, name), code in V2_GRANT_CODES.items() if name in two_sided_grants()
)


def _is_pair_token(token: str) -> bool:
    return token.split(":", 1)[0] in PAIR_CODES


@dataclass(frozen=True, slots=True)
class _Piece:
    """One group's contribution to one root workspace."""

    admin: bool
    tokens: frozenset[str]
    limited: frozenset[tuple[str, SubsetLimit]]
    legacy_roles: tuple[LegacyRole, ...]
    spaces: frozenset[str]


class Compiler:
    """Compiles group sets against one (immutable) org config; memoizes per-group pieces."""

    def __init__(self, config: OrgConfig) -> None:
        self.config = config
        roots = config.roots
        self._ws_by_root: dict[str, list[str]] = {}
        for ws in config.workspaces:
            root = roots.get(ws.id)
            if root is not None:
                self._ws_by_root.setdefault(root, []).append(ws.id)
        self._roots: dict[str, Workspace] = {r: config.workspace_by_id[r] for r in self._ws_by_root}
        self._org_admin_groups = frozenset(b.group_id for b in config.org_admins)
        index = config.group_index
        self._group_roots: dict[str, frozenset[str]] = {}
        for gid, bindings in index.role_bindings.items():
            self._group_roots[gid] = frozenset(
                b.workspace_id for b in bindings if b.workspace_id in self._roots
            )
        self._pieces: dict[tuple[str, str], _Piece | None] = {}
        self._interned: dict[_Piece, _Piece] = {}
        self._combined: dict[tuple[str, frozenset[int]], Compiled] = {}
        self._cats_by_root: dict[str, dict[str, tuple[CategorySpec, ...]]] = {}
        for (ws_id, pm), cats in config.categories_by_model.items():
            self._cats_by_root.setdefault(ws_id, {})[pm] = cats
        self._role_tokens: dict[str, tuple[tuple[str, str, str, SubsetLimit | None], ...]] = {}

    # -- per-group pieces ------------------------------------------------------

    def _piece(self, gid: str, root_id: str) -> _Piece | None:
        key = (gid, root_id)
        if key in self._pieces:
            return self._pieces[key]
        piece = self._build_piece(gid, root_id)
        if piece is not None:  # equal pieces share one object, so combinations can be memoized
            piece = self._interned.setdefault(piece, piece)
        self._pieces[key] = piece
        return piece

    def _build_piece(self, gid: str, root_id: str) -> _Piece | None:
        config = self.config
        root = self._roots[root_id]
        model = root.permissions_model
        roles: list[V2Role | LegacyRole] = []
        if gid in self._org_admin_groups:
            roles.append(config.role_by_id[ADMIN if model == "v2" else L_ADMIN])
        for b in config.group_index.role_bindings.get(gid, ()):
            if b.workspace_id != root_id:
                continue
            role = config.role_by_id.get(b.role_id)
            if role is not None and role.model == model:
                roles.append(role)
        if not roles:
            return None
        spaces = frozenset(
            sa.space_id
            for sa in config.group_index.space_assignments.get(gid, ())
            if sa.workspace_id == root_id and (root_id, sa.space_id) in config.space_by_key
        )
        if model == "legacy":
            legacy = tuple(r for r in roles if isinstance(r, LegacyRole))
            return _Piece(False, frozenset(), frozenset(), legacy, spaces)
        v2 = [r for r in roles if isinstance(r, V2Role)]
        if any(r.id == ADMIN for r in v2):
            return _Piece(True, frozenset(), frozenset(), (), spaces)
        raw = [g for r in v2 for g in v2_raw_grants(r)]
        tokens: set[str] = set()
        limited: set[tuple[str, SubsetLimit]] = set()
        for scope, rid, name, limit in normalize_grants(raw, root.approvals_required):
            code = v2_code(scope, name)
            token = code if scope == WORKSPACE else f"{code}:{rid}"
            if limit is None:
                tokens.add(token)
            else:
                limited.add((token, limit))
        return _Piece(False, frozenset(tokens), frozenset(limited), (), spaces)

    # -- combining -------------------------------------------------------------

    def _combine(self, root: Workspace, pieces: list[_Piece]) -> Compiled:
        spaces_all = not root.spaces_enabled
        if root.permissions_model == "legacy":
            chosen = min((r for p in pieces for r in p.legacy_roles), key=legacy_rank)
            admin = chosen.id == L_ADMIN
            perms = legacy_permissions(chosen)
            spaces = None if spaces_all or admin else frozenset().union(*(p.spaces for p in pieces))
            return Compiled(
                model="legacy",
                admin=admin,
                spaces=spaces,
                tokens=frozenset(legacy_token(t, a) for t, a in perms.actions),
                legacy_role=chosen.id,
                conditional=perms.conditional,
                builtin_legacy=chosen.builtin,
            )
        if any(p.admin for p in pieces):
            return Compiled(model="v2", admin=True, approvals=root.approvals_required)
        spaces = None if spaces_all else frozenset().union(*(p.spaces for p in pieces))
        tokens = frozenset().union(*(p.tokens for p in pieces))
        all_limits = sorted(
            {lim for p in pieces for _, lim in p.limited}, key=lambda lim: lim.chosen
        )
        lim_index = {lim: i for i, lim in enumerate(all_limits)}
        limited = frozenset((b, lim_index[lim]) for p in pieces for b, lim in p.limited)
        # same-group rule: keep each group's pair grants, drop dominated sets
        sets: set[PairSet] = set()
        for p in pieces:
            pt = frozenset(t for t in p.tokens if _is_pair_token(t))
            pl: frozenset[LimitedGrant] = frozenset(
                (b, lim_index[lim]) for b, lim in p.limited if _is_pair_token(b)
            )
            if pt or pl:
                sets.add((pt, pl))
        maximal = [
            s for s in sets if not any(o != s and s[0] <= o[0] and s[1] <= o[1] for o in sets)
        ]
        pairs: tuple[PairSet, ...] | None
        union_pt = frozenset(t for t in tokens if _is_pair_token(t))
        union_pl = frozenset(x for x in limited if _is_pair_token(x[0]))
        if not maximal or (len(maximal) == 1 and maximal[0] == (union_pt, union_pl)):
            pairs = None
        else:
            pairs = tuple(sorted(maximal, key=lambda s: (sorted(s[0]), sorted(s[1]))))
        cats: dict[str, tuple[CategorySpec, ...]] = {}
        root_cats = self._cats_by_root.get(root.id, {})
        for base, _ in limited:
            rid = base.split(":", 1)[1]
            if rid == WILDCARD:
                cats.update(root_cats)
            elif rid in root_cats:
                cats[rid] = root_cats[rid]
        return Compiled(
            model="v2",
            approvals=root.approvals_required,
            spaces=spaces,
            tokens=tokens,
            pairs=pairs,
            limited=limited,
            limits=tuple(all_limits),
            categories=tuple(sorted(cats.items())),
        )

    def compile(self, groups: Iterable[str]) -> dict[str, Compiled]:
        """``{workspace_id: Compiled}`` for every workspace (and environment) with access."""
        gids = sorted(set(groups))
        if any(g in self._org_admin_groups for g in gids):
            roots: Iterable[str] = self._roots
        else:
            touched: set[str] = set()
            for g in gids:
                touched |= self._group_roots.get(g, frozenset())
            roots = touched
        out: dict[str, Compiled] = {}
        for root_id in sorted(roots):
            pieces = [p for g in gids if (p := self._piece(g, root_id)) is not None]
            if not pieces:
                continue
            ckey = (root_id, frozenset(id(p) for p in pieces))
            compiled = self._combined.get(ckey)
            if compiled is None:
                unique = list({id(p): p for p in pieces}.values())
                compiled = self._combine(self._roots[root_id], unique)
                if len(self._combined) < 200_000:
                    self._combined[ckey] = compiled
            for ws_id in self._ws_by_root[root_id]:
                out[ws_id] = compiled
        return out

    def compile_user(self, user: User | None) -> dict[str, Compiled]:
        """A user's entries: nothing unless active and not deleted."""
        if user is None or not user.can_act:
            return {}
        return self.compile(user.group_ids)


_CACHE: list[tuple[OrgConfig, Compiler]] = []


def compiler_for(config: OrgConfig) -> Compiler:
    """A (memoized by identity, last 4 configs) Compiler for ``config``."""
    for cfg, comp in _CACHE:
        if cfg is config:
            return comp
    comp = Compiler(config)
    _CACHE.insert(0, (config, comp))
    del _CACHE[4:]
    return comp


def compile_for_groups(groups: frozenset[str], config: OrgConfig) -> dict[str, Compiled]:
    """Primary API for the worker: compiled permissions of a group set, per workspace."""
    return compiler_for(config).compile(groups)
