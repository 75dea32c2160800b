"""Layer: pure. Structured explanations: which groups, roles, bindings (with provenance) and
decision rules produced an answer, and for a deny what is missing."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .decisions import Decision, Match
from .evaluator import ALL, WorkspaceAccess


@dataclass(frozen=True, slots=True)
class BindingExplanation:
    group_id: str
    role_id: str
    source: str
    """``manual``, a mapping rule id, or ``org_admin:<source>``."""


@dataclass(frozen=True, slots=True)
class IgnoredBindingExplanation:
    group_id: str
    role_id: str
    source: str
    rule: str
    reason: str


@dataclass(frozen=True, slots=True)
class Explanation:
    question: str
    allowed: bool
    reason: str
    """``granted`` or the deny's code (``models.access.reasons``), as a check answers."""
    user_id: str | None
    workspace_id: str
    root_workspace_id: str | None
    permissions_model: str | None
    groups: tuple[str, ...]
    bindings: tuple[BindingExplanation, ...]
    ignored_bindings: tuple[IgnoredBindingExplanation, ...]
    roles: tuple[str, ...]
    legacy_role: str | None
    shadowed_roles: tuple[str, ...]
    visible_spaces: str | tuple[str, ...]
    matched: tuple[Match, ...]
    missing: tuple[str, ...]
    rules: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (deterministic: every list is sorted), in the check API's
        words: ``status`` and ``reason`` as a check answers them, ``user``,
        ``workspace`` and ``root_workspace`` for the ids."""
        out = asdict(self)
        body: dict[str, Any] = {
            "question": out.pop("question"),
            "status": "allow" if self.allowed else "deny",
            "allowed": out.pop("allowed"),
            "reason": out.pop("reason"),
            "user": out.pop("user_id"),
            "workspace": out.pop("workspace_id"),
            "root_workspace": out.pop("root_workspace_id"),
        }
        body.update(out)
        return body


def build_explanation(
    question: str,
    *,
    user_id: str | None,
    user_groups: frozenset[str],
    workspace_id: str,
    access: WorkspaceAccess | None,
    decision: Decision,
) -> Explanation:
    if access is None:
        return Explanation(
            question=question,
            allowed=False,
            reason=decision.reason,
            user_id=user_id,
            workspace_id=workspace_id,
            root_workspace_id=None,
            permissions_model=None,
            groups=tuple(sorted(user_groups)),
            bindings=(),
            ignored_bindings=(),
            roles=(),
            legacy_role=None,
            shadowed_roles=(),
            visible_spaces=(),
            matched=(),
            missing=decision.missing,
            rules=decision.rules,
        )
    bindings = tuple(
        sorted(
            (
                BindingExplanation(g.group_id, b.role_id, b.source)
                for g in access.groups
                for b in g.bindings
            ),
            key=lambda b: (b.group_id, b.role_id, b.source),
        )
    )
    ignored = tuple(
        sorted(
            (
                IgnoredBindingExplanation(
                    i.binding.group_id, i.binding.role_id, i.binding.source, i.rule, i.reason
                )
                for i in access.ignored
            ),
            key=lambda i: (i.group_id, i.role_id, i.source, i.rule),
        )
    )
    vis = access.visible_spaces
    return Explanation(
        question=question,
        allowed=decision.allowed,
        reason=decision.reason,
        user_id=user_id,
        workspace_id=workspace_id,
        root_workspace_id=access.root_id,
        permissions_model=access.model,
        groups=tuple(sorted(user_groups)),
        bindings=bindings,
        ignored_bindings=ignored,
        roles=access.role_ids,
        legacy_role=access.legacy_role,
        shadowed_roles=access.legacy_shadowed,
        visible_spaces=ALL if vis == ALL else tuple(sorted(vis)),
        matched=tuple(sorted(decision.matched, key=lambda m: (m.group_id, m.grant))),
        missing=decision.missing,
        rules=decision.rules,
    )
