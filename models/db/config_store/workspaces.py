"""Layer: store. Workspace writes: create, update (permissions model, names), delete."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from models.db.base import utcnow
from models.db.config_errors import ConfigError, ConflictError
from models.db.config_impact import workspace_impact, workspace_parents
from models.db.config_store.context import (
    PERMISSIONS_MODELS,
    WriteContext,
    check_id,
    get_workspace,
    reapply_targets,
    record,
)
from models.db.config_tables import (
    ConfigSpace,
    ConfigWorkspace,
    RegisteredResourceRow,
    RoleBindingRow,
    SpaceAssignmentRow,
    SubsetCategoryRow,
)


class WorkspaceSpec(BaseModel):
    """A workspace's own settings, as the admin API and ``idsync apply`` give them (the
    file's workspace entries are this, plus the sections the workspace owns)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str = ""
    permissions_model: str = "v2"
    spaces_enabled: bool = False
    approvals_required: bool = False
    parent_workspace_id: str | None = None

    def settings(self) -> dict[str, Any]:
        """Every setting but the id, by column name (the columns of ``ConfigWorkspace``)."""
        return {k: getattr(self, k) for k in WorkspaceSpec.model_fields if k != "id"}


def _validate_workspace(session: Session, ctx: WriteContext, spec: WorkspaceSpec) -> None:
    check_id(spec.id, "id")
    if spec.permissions_model not in PERMISSIONS_MODELS:
        raise ConfigError("permissions_model", "must be 'v2' or 'legacy'")
    if spec.parent_workspace_id is not None:
        if spec.parent_workspace_id == spec.id:
            raise ConfigError("parent_workspace_id", "a workspace cannot be its own environment")
        get_workspace(session, ctx.org_id, spec.parent_workspace_id, "parent_workspace_id")
        parents = workspace_parents(session, ctx.org_id)
        parents[spec.id] = spec.parent_workspace_id
        seen = {spec.id}
        cur: str | None = spec.parent_workspace_id
        while cur is not None:
            if cur in seen:
                raise ConfigError("parent_workspace_id", "environment links would form a cycle")
            seen.add(cur)
            cur = parents.get(cur)


def create_workspace(session: Session, ctx: WriteContext, spec: WorkspaceSpec) -> ConfigWorkspace:
    _validate_workspace(session, ctx, spec)
    if session.get(ConfigWorkspace, (ctx.org_id, spec.id)) is not None:
        raise ConflictError("id", f"workspace {spec.id!r} already exists")
    now = utcnow()
    ws = ConfigWorkspace(
        org_id=ctx.org_id,
        id=spec.id,
        **spec.settings(),
        created_at=now,
        updated_at=now,
    )
    session.add(ws)
    session.flush()
    rules = reapply_targets(session, ctx, "workspace", spec.id, spec.name)
    groups = workspace_impact(session, ctx.org_id, [spec.id]) | rules.affected_group_ids
    record(session, ctx, "config.workspace.created", "workspace", spec.id, groups, spec.name)
    return ws


def update_workspace(session: Session, ctx: WriteContext, spec: WorkspaceSpec) -> ConfigWorkspace:
    """Replace a workspace's settings (no change: nothing written, no change row)."""
    ws = get_workspace(session, ctx.org_id, spec.id)
    _validate_workspace(session, ctx, spec)
    changed = {k: v for k, v in spec.settings().items() if getattr(ws, k) != v}
    if not changed:
        return ws
    trees_before = [spec.id] + ([ws.parent_workspace_id] if ws.parent_workspace_id else [])
    before = workspace_impact(session, ctx.org_id, trees_before)
    old_name = ws.name
    for key, value in changed.items():
        setattr(ws, key, value)
    ws.updated_at = utcnow()
    session.flush()
    rules = reapply_targets(session, ctx, "workspace", spec.id, old_name, spec.name)
    after = workspace_impact(session, ctx.org_id, [spec.id])
    summary = ", ".join(f"{k}={v}" for k, v in sorted(changed.items()))
    record(
        session,
        ctx,
        "config.workspace.updated",
        "workspace",
        spec.id,
        before | after | rules.affected_group_ids,
        summary,
    )
    return ws


def delete_workspace(session: Session, ctx: WriteContext, ws_id: str) -> None:
    """Delete a workspace with its Spaces, bindings, subset categories and resources."""
    ws_name = get_workspace(session, ctx.org_id, ws_id).name
    children = sorted(
        session.scalars(
            select(ConfigWorkspace.id).where(
                ConfigWorkspace.org_id == ctx.org_id, ConfigWorkspace.parent_workspace_id == ws_id
            )
        )
    )
    if children:
        raise ConflictError("id", f"workspace has environments: {', '.join(children)}")
    groups = workspace_impact(session, ctx.org_id, [ws_id])
    for table in (
        SpaceAssignmentRow,
        RoleBindingRow,
        SubsetCategoryRow,
        RegisteredResourceRow,
        ConfigSpace,
    ):
        session.execute(
            delete(table).where(table.org_id == ctx.org_id, table.workspace_id == ws_id)
        )
    session.execute(
        delete(ConfigWorkspace).where(
            ConfigWorkspace.org_id == ctx.org_id, ConfigWorkspace.id == ws_id
        )
    )
    session.expire_all()
    rules = reapply_targets(session, ctx, "workspace", ws_id, ws_name)
    record(
        session,
        ctx,
        "config.workspace.deleted",
        "workspace",
        ws_id,
        groups | rules.affected_group_ids,
    )
