"""Layer: app (admin inputs). The access-configuration requests shared by the admin API
and the declarative file (``idsync apply``): roles, mapping rules and subset categories,
and what the store takes from them. Requests forbid unknown fields, so a typo is a 422
(or a file error) naming the field rather than a silently ignored setting."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from models.db import config_store as store
from models.db.config_errors import ConfigError

PermissionsModel = Literal["v2", "legacy"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RoleIn(Strict):
    """A custom role. v2: ``workspace_grants`` + ``resource_grants``; legacy: ``statements``."""

    id: str
    name: str = Field(min_length=1, max_length=200)
    model: PermissionsModel = "v2"
    workspace_grants: list[str] | None = None
    resource_grants: list[dict[str, Any]] | None = Field(
        default=None,
        description='[{"scope": "source", "resource_id": "*", "grants": [...], '
        '"subset_limit": {"region": ["EU"]}}]',
    )
    statements: list[dict[str, Any]] | None = Field(
        default=None,
        description='legacy policy: [{"effect": "allow", "actions": [...], "resource": "sync", '
        '"conditions": {"labels": {"environment": "production"}}}]',
    )


class SubsetCategoryIn(Strict):
    name: str = Field(min_length=1, max_length=100)
    required: bool = False


class RuleIn(Strict):
    id: str | None = None
    description: str = Field(default="", max_length=500)
    attribute: Literal["externalId", "displayName"]
    match: Literal["exact", "prefix", "regex"]
    pattern: str = Field(min_length=1, max_length=1000)
    ignore_case: bool = False
    kind: Literal["workspace_role", "space", "org_admin"] = "workspace_role"
    workspace: str | None = Field(default=None, description="Fixed target (id or name)")
    role: str | None = Field(default=None, description="Fixed target (id or name)")
    space: str | None = Field(default=None, description="Fixed target (id or name)")
    enabled: bool = True
    position: int = 0


def role_definition(body: RoleIn) -> dict[str, object]:
    """The stored definition of a role request (v2 grants or legacy statements)."""
    if body.model == "v2":
        if body.statements is not None:
            raise ConfigError("statements", "only legacy roles have policy statements")
        store.check_unique(body.workspace_grants, "workspace_grants", "grant")
        return {
            "workspace_grants": sorted(body.workspace_grants or []),
            "resource_grants": list(body.resource_grants or []),
        }
    for name in ("workspace_grants", "resource_grants"):
        if getattr(body, name) is not None:
            raise ConfigError(name, "legacy roles are policy statements only")
    return {"statements": list(body.statements or [])}


def rule_spec(rule_id: str, body: RuleIn) -> store.RuleSpec:
    return store.RuleSpec(
        id=rule_id,
        attribute=body.attribute,
        match=body.match,
        pattern=body.pattern,
        kind=body.kind,
        workspace=body.workspace,
        role=body.role,
        space=body.space,
        ignore_case=body.ignore_case,
        description=body.description,
        enabled=body.enabled,
        position=body.position,
    )
