"""Layer: pure. Role types (v2 and legacy) and their structural validation and parsing.

v2 roles hold workspace grants and resource grants (one id or ``*``) with
optional subset limits. Legacy roles are either a built-in matrix row
(``levels``) or a custom JSON policy (``statements``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from .errors import UnknownGrantError, ValidationError
from .grants import (
    ADMIN_ONLY_GRANTS,
    LEGACY_ACTIONS,
    LEGACY_APPLICABLE,
    LEGACY_RESOURCE_TYPES,
    PARENT_MODEL,
    RESOURCE_SCOPES,
    SUBSET_LIMITABLE,
    V2_GRANT_CODES,
    WORKSPACE,
)
from .subsets import SubsetLimit

WILDCARD: Final = "*"
LegacyLevel = Literal["full", "full_star", "read", "limited"]
LEGACY_LEVELS: Final[frozenset[str]] = frozenset({"full", "full_star", "read", "limited"})


@dataclass(frozen=True, slots=True)
class ResourceGrant:
    """Grants on one resource (``resource_id``) or every resource (``*``) of a scope."""

    scope: str
    resource_id: str
    grants: frozenset[str]
    subset_limit: SubsetLimit | None = None


@dataclass(frozen=True, slots=True)
class V2Role:
    """A v2 role: pre-built (``builtin=True``) or custom."""

    id: str
    name: str
    workspace_grants: frozenset[str] = frozenset()
    resource_grants: tuple[ResourceGrant, ...] = ()
    builtin: bool = False

    @property
    def model(self) -> Literal["v2"]:
        return "v2"


@dataclass(frozen=True, slots=True)
class PolicyStatement:
    """One legacy policy statement: allow ``actions`` on ``resource`` (type or ``*``).

    ``conditions`` are label conditions: every (key, allowed values) must match
    a label of the resource.
    """

    actions: tuple[str, ...]
    resource: str
    conditions: tuple[tuple[str, frozenset[str]], ...] = ()
    effect: Literal["allow"] = "allow"


@dataclass(frozen=True, slots=True)
class LegacyRole:
    """A legacy role: a built-in matrix row (``levels``) or a custom policy."""

    id: str
    name: str
    levels: tuple[tuple[str, LegacyLevel], ...] = ()
    statements: tuple[PolicyStatement, ...] = ()
    builtin: bool = False

    @property
    def model(self) -> Literal["legacy"]:
        return "legacy"


Role = V2Role | LegacyRole


def _require_id(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(where, "must be a non-empty string")
    return value


def validate_v2_role(role: V2Role) -> None:
    """Raise ValidationError (naming the field) if the v2 role is malformed."""
    _require_id(role.id, "id")
    _require_id(role.name, "name")
    for i, grant in enumerate(sorted(role.workspace_grants)):
        if (WORKSPACE, grant) not in V2_GRANT_CODES:
            raise UnknownGrantError(f"workspace_grants[{i}]", f"unknown workspace grant {grant!r}")
        if (WORKSPACE, grant) in ADMIN_ONLY_GRANTS and not role.builtin:
            raise ValidationError(
                f"workspace_grants[{i}]", f"{grant!r} belongs to the pre-built admin role only"
            )
    for i, rg in enumerate(role.resource_grants):
        where = f"resource_grants[{i}]"
        if rg.scope not in RESOURCE_SCOPES:
            raise UnknownGrantError(f"{where}.scope", f"unknown scope {rg.scope!r}")
        _require_id(rg.resource_id, f"{where}.resource_id")
        if not rg.grants:
            raise ValidationError(f"{where}.grants", "must not be empty")
        for j, grant in enumerate(sorted(rg.grants)):
            if (rg.scope, grant) not in V2_GRANT_CODES:
                raise UnknownGrantError(
                    f"{where}.grants[{j}]", f"unknown {rg.scope} grant {grant!r}"
                )
        if rg.subset_limit is not None:
            if rg.scope != PARENT_MODEL:
                raise ValidationError(
                    f"{where}.subset_limit", "subset limits apply to parent-model grants only"
                )
            if not rg.grants & SUBSET_LIMITABLE:
                raise ValidationError(
                    f"{where}.subset_limit",
                    "subset limits apply to view_parent_model_data and "
                    "configure_audiences_syncs only",
                )
            for name, _ in rg.subset_limit.chosen:
                _require_id(name, f"{where}.subset_limit.category")


def validate_legacy_role(role: LegacyRole) -> None:
    """Raise ValidationError (naming the field) if the legacy role is malformed."""
    _require_id(role.id, "id")
    _require_id(role.name, "name")
    for i, (rtype, level) in enumerate(role.levels):
        if rtype not in LEGACY_RESOURCE_TYPES:
            raise UnknownGrantError(f"levels[{i}].resource", f"unknown resource type {rtype!r}")
        if level not in LEGACY_LEVELS:
            raise ValidationError(f"levels[{i}].level", f"unknown level {level!r}")
    for i, st in enumerate(role.statements):
        where = f"statements[{i}]"
        if st.effect != "allow":
            raise ValidationError(f"{where}.effect", "only 'allow' statements exist")
        if st.resource != WILDCARD and st.resource not in LEGACY_RESOURCE_TYPES:
            raise UnknownGrantError(f"{where}.resource", f"unknown resource type {st.resource!r}")
        if not st.actions:
            raise ValidationError(f"{where}.actions", "must not be empty")
        for j, action in enumerate(st.actions):
            if action == WILDCARD:
                continue
            if action not in LEGACY_ACTIONS:
                raise UnknownGrantError(f"{where}.actions[{j}]", f"unknown action {action!r}")
            if st.resource != WILDCARD and action not in LEGACY_APPLICABLE[st.resource]:
                raise UnknownGrantError(
                    f"{where}.actions[{j}]", f"action {action!r} does not apply to {st.resource!r}"
                )
        for key, values in st.conditions:
            _require_id(key, f"{where}.conditions.labels")
            if not values:
                raise ValidationError(f"{where}.conditions.labels.{key}", "must not be empty")


def validate_role(role: Role) -> None:
    """Structural validation of either kind of role."""
    if isinstance(role, V2Role):
        validate_v2_role(role)
    else:
        validate_legacy_role(role)


# --- parsing from admin-API JSON -------------------------------------------


def _str_list(value: object, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError(where, "must be a string or a list of strings")
    return list(value)


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationError(where, "must be an object")
    return value


def parse_v2_role(data: Mapping[str, Any]) -> V2Role:
    """Build and validate a custom v2 role from JSON-like data.

    Shape: ``{"id", "name", "workspace_grants": [...], "resource_grants": [{"scope",
    "resource_id", "grants": [...], "subset_limit": {"region": ["EU"]}}]}``.
    """
    data = _mapping(data, "role")
    unknown = set(data) - {"id", "name", "workspace_grants", "resource_grants"}
    if unknown:
        raise ValidationError(sorted(unknown)[0], "unknown field")
    grants: list[ResourceGrant] = []
    raw_grants = data.get("resource_grants", [])
    if not isinstance(raw_grants, list):
        raise ValidationError("resource_grants", "must be a list")
    for i, raw in enumerate(raw_grants):
        where = f"resource_grants[{i}]"
        item = _mapping(raw, where)
        extra = set(item) - {"scope", "resource_id", "grants", "subset_limit"}
        if extra:
            raise ValidationError(f"{where}.{sorted(extra)[0]}", "unknown field")
        limit = None
        if item.get("subset_limit") is not None:
            raw_limit = _mapping(item["subset_limit"], f"{where}.subset_limit")
            limit = SubsetLimit.of(
                {k: _str_list(v, f"{where}.subset_limit.{k}") for k, v in raw_limit.items()}
            )
        grants.append(
            ResourceGrant(
                scope=str(item.get("scope", "")),
                resource_id=str(item.get("resource_id", "")),
                grants=frozenset(_str_list(item.get("grants", []), f"{where}.grants")),
                subset_limit=limit,
            )
        )
    role = V2Role(
        id=str(data.get("id", "")),
        name=str(data.get("name", "")),
        workspace_grants=frozenset(_str_list(data.get("workspace_grants", []), "workspace_grants")),
        resource_grants=tuple(grants),
    )
    validate_v2_role(role)
    return role


def parse_policy_statements(
    policy: str | Mapping[str, Any] | Sequence[Any],
) -> tuple[PolicyStatement, ...]:
    """Parse a legacy JSON policy: ``{"statements": [...]}`` or a bare list of statements.

    Each statement: ``{"effect": "allow", "actions": [...] | "*", "resource": type | "*",
    "conditions": {"labels": {"environment": "production" | [...]}}}``.
    """
    if isinstance(policy, str):
        try:
            policy = json.loads(policy)
        except json.JSONDecodeError as exc:
            raise ValidationError("policy", f"invalid JSON: {exc.msg}") from exc
    raw: object = policy
    if isinstance(raw, Mapping):
        raw = raw.get("statements")
    if not isinstance(raw, list):
        raise ValidationError("statements", "must be a list")
    out: list[PolicyStatement] = []
    for i, item in enumerate(raw):
        where = f"statements[{i}]"
        st = _mapping(item, where)
        extra = set(st) - {"effect", "actions", "resource", "conditions"}
        if extra:
            raise ValidationError(f"{where}.{sorted(extra)[0]}", "unknown field")
        effect = st.get("effect", "allow")
        if effect != "allow":
            raise ValidationError(f"{where}.effect", "only 'allow' statements exist")
        conditions: list[tuple[str, frozenset[str]]] = []
        if st.get("conditions") is not None:
            cond = _mapping(st["conditions"], f"{where}.conditions")
            if set(cond) - {"labels"}:
                raise ValidationError(
                    f"{where}.conditions.{sorted(set(cond) - {'labels'})[0]}",
                    "only label conditions exist",
                )
            labels = _mapping(cond.get("labels", {}), f"{where}.conditions.labels")
            for key, value in sorted(labels.items()):
                conditions.append(
                    (key, frozenset(_str_list(value, f"{where}.conditions.labels.{key}")))
                )
        actions = _str_list(st.get("actions", []), f"{where}.actions")
        out.append(
            PolicyStatement(
                actions=tuple(actions),
                resource=str(st.get("resource", "")),
                conditions=tuple(conditions),
            )
        )
    return tuple(out)


def parse_legacy_role(
    role_id: str, name: str, policy: str | Mapping[str, Any] | Sequence[Any]
) -> LegacyRole:
    """Build and validate a custom legacy role from its JSON policy."""
    role = LegacyRole(id=role_id, name=name, statements=parse_policy_statements(policy))
    validate_legacy_role(role)
    return role
