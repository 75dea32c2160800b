"""Layer: store. Space writes (Spaces inside a v2 workspace): create, update, delete."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.orm import Session

from models.db.config_errors import ConfigError, ConflictError
from models.db.config_impact import groups_in_space
from models.db.config_store.context import (
    WriteContext,
    check_id,
    get_space,
    get_workspace,
    reapply_targets,
    record,
    space_key,
)
from models.db.config_tables import ConfigSpace, SpaceAssignmentRow


def create_space(
    session: Session, ctx: WriteContext, space_id: str, workspace_id: str, name: str = ""
) -> ConfigSpace:
    check_id(space_id, "id")
    ws = get_workspace(session, ctx.org_id, workspace_id, "workspace_id")
    if ws.parent_workspace_id is not None:
        raise ConfigError("workspace_id", "environments share their parent workspace's Spaces")
    if session.get(ConfigSpace, (ctx.org_id, workspace_id, space_id)) is not None:
        raise ConflictError("id", f"Space {space_id!r} already exists in {workspace_id!r}")
    space = ConfigSpace(org_id=ctx.org_id, id=space_id, workspace_id=workspace_id, name=name)
    session.add(space)
    session.flush()
    rules = reapply_targets(session, ctx, "space", space_id, name)
    record(
        session,
        ctx,
        "config.space.created",
        "space",
        space_key(workspace_id, space_id),
        rules.affected_group_ids,
        name,
    )
    return space


def update_space(
    session: Session, ctx: WriteContext, workspace_id: str, space_id: str, name: str
) -> ConfigSpace:
    """Rename a Space (a Space never moves to another workspace)."""
    space = get_space(session, ctx.org_id, workspace_id, space_id)
    if space.name == name:
        return space
    old_name, space.name = space.name, name
    session.flush()
    rules = reapply_targets(session, ctx, "space", space_id, old_name, name)
    record(
        session,
        ctx,
        "config.space.updated",
        "space",
        space_key(workspace_id, space_id),
        rules.affected_group_ids,
        name,
    )
    return space


def delete_space(session: Session, ctx: WriteContext, workspace_id: str, space_id: str) -> None:
    space_name = get_space(session, ctx.org_id, workspace_id, space_id).name
    groups = groups_in_space(session, ctx.org_id, workspace_id, space_id)
    session.execute(
        delete(SpaceAssignmentRow).where(
            SpaceAssignmentRow.org_id == ctx.org_id,
            SpaceAssignmentRow.workspace_id == workspace_id,
            SpaceAssignmentRow.space_id == space_id,
        )
    )
    session.execute(
        delete(ConfigSpace).where(
            ConfigSpace.org_id == ctx.org_id,
            ConfigSpace.workspace_id == workspace_id,
            ConfigSpace.id == space_id,
        )
    )
    session.expire_all()
    rules = reapply_targets(session, ctx, "space", space_id, space_name)
    record(
        session,
        ctx,
        "config.space.deleted",
        "space",
        space_key(workspace_id, space_id),
        groups | rules.affected_group_ids,
    )
