"""Layer: pure. User-level API over one org config: check, check_sync, visible_spaces, batch
forms, who-can / what-can, legacy conflict report and explain.

Every user-level answer is "active and not deleted" + the group-set answer;
group-set answers are memoized (users with equal group sets share them).
Unknown, inactive or deleted users (``None`` or ``can_act`` false) get deny,
never an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from .compiled import Compiled
from .compiled_checks import check_compiled
from .compiler import Compiler
from .decisions import (
    Decision,
    ModelEditDecision,
    decide_check,
    decide_model_edit,
    decide_sync,
)
from .evaluator import VisibleSpaces, WorkspaceAccess, evaluate_workspace
from .explain import Explanation, build_explanation
from .grants import V2_GRANTS_BY_CODE
from .inputs import OrgConfig, ResourceRef, User
from .reasons import UNKNOWN_USER
from .refs import SyncRef, as_ref

_MEMO_LIMIT = 50_000


@dataclass(frozen=True, slots=True)
class Question:
    """One ``check`` of a batch."""

    workspace_id: str
    grant: str
    resource: ResourceRef | None = None


@dataclass(frozen=True, slots=True)
class WhatCan:
    """Everything a user may do in one workspace."""

    workspace_id: str
    roles: tuple[str, ...]
    is_admin: bool
    grants: tuple[str, ...]
    """v2: ``"<grant> on <scope>:<id|*>"`` (``"(limited)"`` suffix for subset limits)."""
    legacy_role: str | None
    legacy_actions: tuple[str, ...]
    """legacy: ``"<type>:<action>"``; label-conditioned ones end with ``" if <labels>"``."""
    visible_spaces: VisibleSpaces


@dataclass(frozen=True, slots=True)
class LegacyConflict:
    """A user whose groups give several legacy roles in one workspace."""

    user_id: str
    workspace_id: str
    chosen: str
    shadowed: tuple[str, ...]
    groups_by_role: tuple[tuple[str, tuple[str, ...]], ...]


class AccessModel:
    """Decisions for users of one organization."""

    def __init__(self, config: OrgConfig) -> None:
        self.config = config
        self.compiler = Compiler(config)
        self._rich: dict[tuple[frozenset[str], str], WorkspaceAccess] = {}
        self._compiled: dict[frozenset[str], dict[str, Compiled]] = {}

    # -- evaluation ---------------------------------------------------------------

    def workspace_access(self, user: User | None, workspace_id: str) -> WorkspaceAccess | None:
        """The reference evaluation for ``user`` in ``workspace_id``; None if the user can't act."""
        if user is None or not user.can_act:
            return None
        key = (user.group_ids, workspace_id)
        access = self._rich.get(key)
        if access is None:
            if len(self._rich) >= _MEMO_LIMIT:
                self._rich.clear()
            access = evaluate_workspace(user.group_ids, self.config, workspace_id)
            self._rich[key] = access
        return access

    def compiled_for(self, groups: frozenset[str]) -> dict[str, Compiled]:
        """Fast-path compiled entries of a group set (memoized)."""
        out = self._compiled.get(groups)
        if out is None:
            if len(self._compiled) >= _MEMO_LIMIT:
                self._compiled.clear()
            out = self.compiler.compile(groups)
            self._compiled[groups] = out
        return out

    def compile_user(self, user: User | None) -> dict[str, Compiled]:
        if user is None or not user.can_act:
            return {}
        return self.compiled_for(user.group_ids)

    def _ref(self, workspace_id: str, ref: ResourceRef | None) -> ResourceRef | None:
        return None if ref is None else self.config.with_registered_labels(workspace_id, ref)

    # -- decisions ----------------------------------------------------------------

    def decide(
        self, user: User | None, workspace_id: str, grant: str, resource: ResourceRef | None = None
    ) -> Decision:
        access = self.workspace_access(user, workspace_id)
        decision = decide_check(access, self.config, grant, self._ref(workspace_id, resource))
        return _user_reason(user, decision)

    def check(
        self, user: User | None, workspace_id: str, grant: str, resource: ResourceRef | None = None
    ) -> bool:
        """May ``user`` use ``grant`` (on ``resource``) in ``workspace_id``?"""
        return self.decide(user, workspace_id, grant, resource).allowed

    def sync_ref(
        self,
        workspace_id: str,
        source: str | ResourceRef,
        destination: str | ResourceRef,
        space_id: str | None = None,
        *,
        sync_id: str | None = None,
        labels: frozenset[tuple[str, str]] | None = None,
        model: str | ResourceRef | None = None,
    ) -> SyncRef:
        sync = SyncRef.of(source, destination, space_id, id=sync_id, labels=labels, model=model)
        return sync.with_registered_labels(workspace_id, self.config)

    def decide_sync(
        self, user: User | None, workspace_id: str, sync: SyncRef, action: str
    ) -> Decision:
        access = self.workspace_access(user, workspace_id)
        sync = sync.with_registered_labels(workspace_id, self.config)
        return _user_reason(user, decide_sync(access, self.config, sync, action))

    def check_sync(
        self,
        user: User | None,
        workspace_id: str,
        source: str | ResourceRef,
        destination: str | ResourceRef,
        action: str,
        *,
        space_id: str | None = None,
        sync_id: str | None = None,
        labels: frozenset[tuple[str, str]] | None = None,
        model: str | ResourceRef | None = None,
    ) -> bool:
        """May ``user`` do ``action`` on a sync from ``source`` to ``destination``?

        v2 actions: configure (create/update/edit), delete, draft, approve, trigger (start),
        view_data (debugger/testrow), read. Legacy: the legacy sync actions.
        """
        sync = SyncRef.of(source, destination, space_id, id=sync_id, labels=labels, model=model)
        return self.decide_sync(user, workspace_id, sync, action).allowed

    def visible_spaces(self, user: User | None, workspace_id: str) -> VisibleSpaces:
        """Visible Space ids in ``workspace_id``, or "all"; nothing for users who can't act."""
        access = self.workspace_access(user, workspace_id)
        return frozenset() if access is None else access.visible_spaces

    def check_model_edit(
        self,
        user: User | None,
        workspace_id: str,
        model: str | ResourceRef,
        syncs: Sequence[SyncRef],
        action: str = "configure",
    ) -> ModelEditDecision:
        """Editing a model needs the right to edit every sync using it (one answer).

        v2: ``model`` is the model's source (a ``source`` ref or id); legacy: a ``model`` ref.
        """
        access = self.workspace_access(user, workspace_id)
        ref = as_ref(model, "source")
        ref = self.config.with_registered_labels(workspace_id, ref)
        resolved = [s.with_registered_labels(workspace_id, self.config) for s in syncs]
        return decide_model_edit(access, self.config, ref, resolved, action)

    # -- batch ----------------------------------------------------------------------

    def check_many(self, user: User | None, questions: Sequence[Question]) -> list[bool]:
        return [self.check(user, q.workspace_id, q.grant, q.resource) for q in questions]

    def check_sync_many(
        self, user: User | None, workspace_id: str, syncs: Sequence[SyncRef], action: str
    ) -> list[bool]:
        return [self.decide_sync(user, workspace_id, s, action).allowed for s in syncs]

    def visible_spaces_many(
        self, user: User | None, workspace_ids: Iterable[str]
    ) -> dict[str, VisibleSpaces]:
        return {ws: self.visible_spaces(user, ws) for ws in workspace_ids}

    # -- listings ---------------------------------------------------------------------

    def who_can(
        self,
        users: Iterable[User],
        workspace_id: str,
        grant: str,
        resource: ResourceRef | None = None,
    ) -> tuple[str, ...]:
        """Ids of the users allowed ``grant`` (decided once per distinct group set)."""
        ref = self._ref(workspace_id, resource)
        by_groups: dict[frozenset[str], bool] = {}
        out: list[str] = []
        for u in users:
            if not u.can_act:
                continue
            ok = by_groups.get(u.group_ids)
            if ok is None:
                ok = check_compiled(self.compiled_for(u.group_ids).get(workspace_id), grant, ref)
                by_groups[u.group_ids] = ok
            if ok:
                out.append(u.id)
        return tuple(sorted(out))

    def what_can(self, user: User | None, workspace_id: str) -> WhatCan:
        access = self.workspace_access(user, workspace_id)
        if access is None or not access.has_role:
            return WhatCan(workspace_id, (), False, (), None, (), frozenset())
        grants: tuple[str, ...] = ()
        if access.model == "v2":
            if access.is_admin:
                grants = ("every grant on every resource (workspace admin)",)
            else:
                grants = tuple(
                    sorted(
                        {
                            f"{name} on "
                            + ("workspace" if scope == "workspace" else f"{scope}:{rid}")
                            + (" (limited)" if limit is not None else "")
                            for scope, rid, name, limit in access.grants()
                        }
                    )
                )
        legacy_actions: tuple[str, ...] = ()
        if access.legacy is not None:
            plain = [f"{t}:{a}" for t, a in sorted(access.legacy.actions)]
            cond = [
                f"{t}:{a} if " + ",".join(f"{k}={'|'.join(sorted(v))}" for k, v in conds)
                for t, acts, conds in access.legacy.conditional
                for a in sorted(acts)
            ]
            legacy_actions = tuple(plain + cond)
        return WhatCan(
            workspace_id,
            access.role_ids,
            access.is_admin,
            grants,
            access.legacy_role,
            legacy_actions,
            access.visible_spaces,
        )

    def legacy_conflicts(self, users: Iterable[User]) -> tuple[LegacyConflict, ...]:
        """Users whose groups give several legacy roles in a (root) legacy workspace."""
        out: list[LegacyConflict] = []
        roots = [
            w.id
            for w in self.config.workspaces
            if w.permissions_model == "legacy" and self.config.roots.get(w.id) == w.id
        ]
        for u in users:
            for ws in roots:
                access = self.workspace_access(u, ws)
                if access is None or not access.legacy_shadowed or access.legacy_role is None:
                    continue
                by_role: dict[str, set[str]] = {}
                for g in access.groups:
                    for b in g.bindings:
                        by_role.setdefault(b.role_id, set()).add(g.group_id)
                out.append(
                    LegacyConflict(
                        u.id,
                        ws,
                        access.legacy_role,
                        access.legacy_shadowed,
                        tuple((r, tuple(sorted(gs))) for r, gs in sorted(by_role.items())),
                    )
                )
        return tuple(sorted(out, key=lambda c: (c.user_id, c.workspace_id)))

    # -- explain ------------------------------------------------------------------------

    def explain(
        self, user: User | None, workspace_id: str, grant: str, resource: ResourceRef | None = None
    ) -> Explanation:
        """Why ``check`` answers what it answers."""
        decision = self.decide(user, workspace_id, grant, resource)
        on = "workspace" if resource is None else f"{resource.type}:{resource.id}"
        if resource is not None and resource.space_id is not None:
            on += f" in space {resource.space_id}"
        return build_explanation(
            f"check {grant} on {on}",
            user_id=None if user is None else user.id,
            user_groups=frozenset() if user is None else user.group_ids,
            workspace_id=workspace_id,
            access=self.workspace_access(user, workspace_id),
            decision=decision,
        )

    def explain_sync(
        self, user: User | None, workspace_id: str, sync: SyncRef, action: str
    ) -> Explanation:
        decision = self.decide_sync(user, workspace_id, sync, action)
        question = (
            f"check_sync {action} {sync.source.type}:{sync.source.id} -> "
            f"destination:{sync.destination.id}"
            + (f" in space {sync.space_id}" if sync.space_id is not None else "")
        )
        return build_explanation(
            question,
            user_id=None if user is None else user.id,
            user_groups=frozenset() if user is None else user.group_ids,
            workspace_id=workspace_id,
            access=self.workspace_access(user, workspace_id),
            decision=decision,
        )


def _user_reason(user: User | None, decision: Decision) -> Decision:
    """An unknown user's deny says so (``unknown_user``), not ``user_inactive_or_deleted``."""
    if user is None and not decision.allowed:
        return replace(decision, reason=UNKNOWN_USER)
    return decision


def describe_token(token: str) -> str:
    """Human form of a v2 compiled token (for debugging cache contents)."""
    code, _, rid = token.partition(":")
    scope, name = V2_GRANTS_BY_CODE.get(code, ("?", code))
    return name if not rid else f"{name} on {scope}:{rid}"
