"""Layer: app (admin API). Request and response bodies of the admin API (the role, rule and
subset-category requests are ``idsync.config_inputs``'s, shared with the declarative file).

Requests forbid unknown fields, so a typo is a 422 naming the field rather than a
silently ignored setting.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator
from pydantic.json_schema import SkipJsonSchema

from idsync.config_inputs import PermissionsModel, Strict, SubsetCategoryIn


class ErrorOut(BaseModel):
    detail: str
    field: str | None = None


# --- workspaces and Spaces ---------------------------------------------------------


class WorkspaceIn(Strict):
    id: str | None = Field(default=None, description="Slug or UUID; generated when omitted")
    name: str = Field(default="", max_length=200)
    permissions_model: PermissionsModel = "v2"
    spaces_enabled: bool = False
    approvals_required: bool = False
    parent_workspace_id: str | None = Field(
        default=None, description="Set for an environment: the workspace it is a copy of"
    )


class WorkspacePatch(Strict):
    name: str | None = Field(default=None, max_length=200)
    permissions_model: PermissionsModel | None = None
    spaces_enabled: bool | None = None
    approvals_required: bool | None = None
    parent_workspace_id: str | None = None


class WorkspaceOut(BaseModel):
    id: str
    name: str
    permissions_model: str
    spaces_enabled: bool
    approvals_required: bool
    parent_workspace_id: str | None
    created_at: datetime
    updated_at: datetime


class SpaceIn(Strict):
    id: str | None = None
    workspace_id: str
    name: str = Field(default="", max_length=200)


class SpacePatch(Strict):
    name: str = Field(max_length=200)


class SpaceOut(BaseModel):
    id: str
    workspace_id: str
    name: str
    created_at: datetime


# --- roles ------------------------------------------------------------------------------


class RoleOut(BaseModel):
    id: str
    name: str
    model: str
    builtin: bool
    workspace_grants: list[str] = []
    resource_grants: list[dict[str, Any]] = []
    statements: list[dict[str, Any]] = []
    levels: dict[str, str] = Field(default={}, description="built-in legacy roles: type -> level")


# --- bindings -------------------------------------------------------------------------


class OrgAdminBindingIn(Strict):
    group_id: str


class RoleBindingIn(Strict):
    group_id: str
    workspace_id: str
    role_id: str


class RoleBindingChangeIn(Strict):
    role_id: str


class SpaceAssignmentIn(Strict):
    group_id: str
    workspace_id: str = Field(description="the Space's workspace (Space ids are per workspace)")
    space_id: str


class BindingOut(BaseModel):
    id: str
    kind: Literal["org_admin_binding", "role_binding", "space_assignment"]
    group_id: str
    workspace_id: str | None = None
    role_id: str | None = None
    space_id: str | None = None
    source: str = Field(description="'manual' or the id of the mapping rule that made it")
    created_at: datetime


# --- subset categories and registered resources -------------------------------------


class SubsetCategoriesIn(Strict):
    categories: list[SubsetCategoryIn]


class ParentModelSubsetsOut(BaseModel):
    workspace_id: str
    parent_model_id: str
    categories: list[SubsetCategoryIn]


class ResourceIn(Strict):
    labels: dict[str, str] = Field(default_factory=dict)


class ResourceOut(BaseModel):
    workspace_id: str
    type: str
    id: str
    labels: dict[str, str]


# --- mapping rules -------------------------------------------------------------------------


class RuleOut(BaseModel):
    id: str
    description: str
    attribute: str
    match: str
    pattern: str
    ignore_case: bool
    kind: str
    workspace: str | None
    role: str | None
    space: str | None
    enabled: bool
    position: int
    created_at: datetime
    updated_at: datetime


class RuleProblemOut(BaseModel):
    rule_id: str
    group_id: str | None
    field: str
    message: str


class RuleBindingOut(BaseModel):
    kind: str
    group_id: str
    target: str = Field(description="'' (org admin), 'workspace/role' or 'workspace/space'")
    source: str


class RuleApplicationOut(BaseModel):
    created: list[RuleBindingOut]
    removed: list[RuleBindingOut]
    problems: list[RuleProblemOut]
    affected_group_ids: list[str]


class RuleWriteOut(BaseModel):
    rule: RuleOut | None
    application: RuleApplicationOut


class RuleJobOut(BaseModel):
    """A full application of the mapping rules, run by the worker in chunks of groups."""

    job: str
    state: Literal["queued", "running", "done", "failed"]
    revision: int = Field(description="the organization's revision when it was requested")
    actor: str
    request_id: str | None
    requested_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    seconds: float | None = Field(description="from start to finish")
    groups: int = Field(description="groups done so far")
    chunks: int
    created: int = Field(description="rule-made bindings created")
    removed: int = Field(description="rule-made bindings removed")
    problems: int
    evaluations: int = Field(description="regular expressions run (regex rule x group)")
    change_rows: int = Field(description="config.rules.applied change rows (one per chunk)")
    error: str | None


class RuleApplyStatusOut(BaseModel):
    current: RuleJobOut | None = Field(description="the latest job requested")
    last: RuleJobOut | None = Field(description="the latest job that finished (state done)")


class RuleProblemsOut(BaseModel):
    source: Literal["live", "last_application", "none"] = Field(
        description="live: evaluated by this request (rule x group pairs within "
        "evaluation_budget); last_application: found by the last full application "
        "(job, revision, computed_at); none: too large to evaluate and never applied"
    )
    job: str | None
    revision: int | None = Field(description="the organization's revision they describe")
    computed_at: datetime | None
    evaluations: int = Field(description="regular expressions this request ran")
    evaluation_budget: int = Field(description="rule x group pairs evaluated live at most")
    problems: list[RuleProblemOut]
    problems_total: int = Field(description="problems found (a stored list keeps the first 1000)")
    bindings: list[RuleBindingOut] | None = Field(
        description="live only: the rule-made bindings the rules produce now"
    )


# --- groups ---------------------------------------------------------------------------------


class GroupOut(BaseModel):
    id: str
    display_name: str
    external_id: str | None


# --- access reads ------------------------------------------------------------------------


class ResourceRefIn(Strict):
    type: str
    id: str | None = None
    space_id: str | None = None
    labels: dict[str, str] | None = None
    subsets: dict[str, list[str]] | None = Field(
        default=None, description="audience: subset values used, by category"
    )
    space_scoped: bool = False


RENAMED: dict[str, str] = {
    "user_id": "user",
    "workspace_id": "workspace",
    "sync": "source, destination, space_id, id, labels and model at the top level",
}
"""explain's names before it took a check's body (refused since, naming the new ones)."""


class ExplainIn(Strict):
    """The body of a check (``POST /check``) or of a sync check (``POST /check/sync``):
    the same names, so a check that surprises can be pasted here as it was sent.

    Check form: ``grant`` (+ ``resource``); sync form: ``source``, ``destination``,
    ``action`` (+ ``space_id``, and for legacy ``id``, ``labels``, ``model``). ``type``
    (``check`` or ``sync``) may say which; left out, the sync form is meant when
    ``source``, ``destination`` or ``action`` is given. ``org``, when given, must be the
    admin key's organization; ``min_revision`` is accepted and has no effect (explain
    reads the database, which is never behind)."""

    user_id: SkipJsonSchema[Any] = None
    workspace_id: SkipJsonSchema[Any] = None
    sync: SkipJsonSchema[Any] = None
    type: Literal["check", "sync"] | None = None
    org: str | None = None
    min_revision: int | None = None
    user: str
    workspace: str
    grant: str | None = Field(default=None, description="check form: the grant or action")
    resource: ResourceRefIn | None = None
    source: ResourceRefIn | str | None = Field(
        default=None, description="sync form: a source id, or a resource (parent model…)"
    )
    destination: ResourceRefIn | str | None = Field(
        default=None, description="sync form: a destination id or resource"
    )
    action: str | None = Field(default=None, description="sync form: the action on the sync")
    space_id: str | None = Field(default=None, description="sync form: the sync's Space")
    id: str | None = Field(default=None, description="sync form, legacy: the sync's id")
    labels: dict[str, str] | None = Field(
        default=None, description="sync form, legacy: the sync's labels"
    )
    model: ResourceRefIn | str | None = Field(
        default=None, description="sync form, legacy: the sync's model"
    )

    @field_validator("user_id", "workspace_id", "sync", mode="before")
    @classmethod
    def _renamed(cls, value: object, info: ValidationInfo) -> object:
        raise ValueError(f"renamed: use {RENAMED[str(info.field_name)]} (as in a check)")


class WhoCanIn(Strict):
    workspace: str
    grant: str
    resource: ResourceRefIn | None = None


class WhoCanOut(BaseModel):
    workspace: str
    grant: str
    users: list[str]


class WorkspacePermissionsOut(BaseModel):
    workspace_id: str
    roles: list[str]
    is_admin: bool
    grants: list[str]
    legacy_role: str | None
    legacy_actions: list[str]
    visible_spaces: str | list[str]


class UserPermissionsOut(BaseModel):
    user_id: str
    active: bool
    group_ids: list[str]
    workspaces: list[WorkspacePermissionsOut]


class LegacyConflictOut(BaseModel):
    user_id: str
    workspace_id: str
    chosen: str
    shadowed: list[str]
    groups_by_role: dict[str, list[str]]


class ConfigProblemOut(BaseModel):
    kind: str = Field(description="role, role_binding, space_assignment, workspace, space")
    id: str
    field: str
    message: str


class OrganizationOut(BaseModel):
    id: str
    name: str
    revision: int
