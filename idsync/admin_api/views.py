"""Layer: app. Rows and ``models.access`` results -> response bodies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from idsync.admin_api.schemas import (
    BindingOut,
    LegacyConflictOut,
    RoleOut,
    RuleApplicationOut,
    RuleBindingOut,
    RuleJobOut,
    RuleOut,
    RuleProblemOut,
    SpaceOut,
    WorkspaceOut,
    WorkspacePermissionsOut,
)
from models.access.access_model import LegacyConflict, WhatCan
from models.access.mapping_rules import MappingProblem
from models.access.roles import LegacyRole, Role, V2Role
from models.db.config_store import BindingRow
from models.db.config_tables import (
    ConfigSpace,
    ConfigWorkspace,
    CustomRole,
    MappingRuleRow,
    OrgAdminBindingRow,
    RoleBindingRow,
    SpaceAssignmentRow,
)
from models.db.rule_application import BindingKey, RuleApplication


def workspace_out(ws: ConfigWorkspace) -> WorkspaceOut:
    return WorkspaceOut.model_validate(ws, from_attributes=True)


def space_out(sp: ConfigSpace) -> SpaceOut:
    return SpaceOut.model_validate(sp, from_attributes=True)


def custom_role_out(row: CustomRole) -> RoleOut:
    d = row.definition or {}
    return RoleOut(
        id=row.id,
        name=row.name,
        model=row.model,
        builtin=False,
        workspace_grants=sorted(d.get("workspace_grants", [])),
        resource_grants=list(d.get("resource_grants", [])),
        statements=list(d.get("statements", [])),
    )


def builtin_role_out(role: Role) -> RoleOut:
    if isinstance(role, V2Role):
        grants: list[dict[str, Any]] = [
            {"scope": rg.scope, "resource_id": rg.resource_id, "grants": sorted(rg.grants)}
            for rg in role.resource_grants
        ]
        return RoleOut(
            id=role.id,
            name=role.name,
            model="v2",
            builtin=True,
            workspace_grants=sorted(role.workspace_grants),
            resource_grants=grants,
        )
    assert isinstance(role, LegacyRole)
    return RoleOut(
        id=role.id, name=role.name, model="legacy", builtin=True, levels=dict(role.levels)
    )


_BINDING_KINDS: dict[type[BindingRow], str] = {
    OrgAdminBindingRow: "org_admin_binding",
    RoleBindingRow: "role_binding",
    SpaceAssignmentRow: "space_assignment",
}


def binding_out(row: BindingRow) -> BindingOut:
    """The row's columns (an organization admin binding has no workspace, role or Space)
    and its kind."""
    fields = {name: getattr(row, name, None) for name in BindingOut.model_fields}
    return BindingOut.model_validate({**fields, "kind": _BINDING_KINDS[type(row)]})


def rule_out(row: MappingRuleRow) -> RuleOut:
    return RuleOut.model_validate(row, from_attributes=True)


def _binding_key_out(key: BindingKey) -> RuleBindingOut:
    kind, group_id, target, source = key
    return RuleBindingOut(kind=kind, group_id=group_id, target=target, source=source)


def problem_out(p: MappingProblem) -> RuleProblemOut:
    return RuleProblemOut(rule_id=p.rule_id, group_id=p.group_id, field=p.field, message=p.message)


def application_out(app: RuleApplication) -> RuleApplicationOut:
    return RuleApplicationOut(
        created=[_binding_key_out(k) for k in app.created],
        removed=[_binding_key_out(k) for k in app.removed],
        problems=[problem_out(p) for p in app.problems],
        affected_group_ids=sorted(app.affected_group_ids),
    )


_JOB_STATES: dict[str, Literal["queued", "running", "done", "failed"]] = {
    "queued": "queued",
    "running": "running",
    "done": "done",
    "failed": "failed",
}


def _epoch(value: str | None) -> datetime | None:
    return None if not value else datetime.fromtimestamp(float(value), tz=UTC)


def rule_job_out(job: dict[str, str]) -> RuleJobOut | None:
    """A job hash of ``worker.rule_jobs`` (None when there is none)."""
    if not job.get("job"):
        return None

    def count(name: str) -> int:
        return int(job.get(name) or 0)

    return RuleJobOut(
        job=job["job"],
        state=_JOB_STATES.get(job.get("state", ""), "queued"),
        revision=int(job.get("revision") or 0),
        actor=job.get("actor", ""),
        request_id=job.get("request_id") or None,
        requested_at=_epoch(job.get("requested_at")),
        started_at=_epoch(job.get("started_at")),
        finished_at=_epoch(job.get("finished_at")),
        seconds=float(job["seconds"]) if job.get("seconds") else None,
        error=job.get("error") or None,
        groups=count("groups"),
        chunks=count("chunks"),
        created=count("created"),
        removed=count("removed"),
        problems=count("problems"),
        evaluations=count("evaluations"),
        change_rows=count("change_rows"),
    )


def what_can_out(w: WhatCan) -> WorkspacePermissionsOut:
    vis = w.visible_spaces
    return WorkspacePermissionsOut(
        workspace_id=w.workspace_id,
        roles=list(w.roles),
        is_admin=w.is_admin,
        grants=list(w.grants),
        legacy_role=w.legacy_role,
        legacy_actions=list(w.legacy_actions),
        visible_spaces=vis if isinstance(vis, str) else sorted(vis),
    )


def conflict_out(c: LegacyConflict) -> LegacyConflictOut:
    return LegacyConflictOut(
        user_id=c.user_id,
        workspace_id=c.workspace_id,
        chosen=c.chosen,
        shadowed=list(c.shadowed),
        groups_by_role={role: list(groups) for role, groups in c.groups_by_role},
    )
