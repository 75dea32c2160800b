"""Layer: store. Subset categories of a workspace's parent models and the registered
resources (labels the cache serves)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from models.db.base import utcnow
from models.db.config_errors import ConfigError, NotFoundError
from models.db.config_impact import workspace_impact
from models.db.config_store.context import RESOURCE_TYPES, WriteContext, get_workspace, record
from models.db.config_tables import RegisteredResourceRow, SubsetCategoryRow


def set_subset_categories(
    session: Session,
    ctx: WriteContext,
    workspace_id: str,
    parent_model_id: str,
    categories: Sequence[tuple[str, bool]],
) -> bool:
    """Replace the subset categories of a parent model; returns whether anything changed."""
    get_workspace(session, ctx.org_id, workspace_id, "workspace_id")
    if not parent_model_id or len(parent_model_id) > 255:
        raise ConfigError("parent_model_id", "must be 1-255 characters")
    wanted: dict[str, bool] = {}
    for i, (name, required) in enumerate(categories):
        if not name or len(name) > 100:
            raise ConfigError(f"categories[{i}].name", "must be 1-100 characters")
        if name in wanted:
            raise ConfigError(f"categories[{i}].name", f"duplicate category {name!r}")
        wanted[name] = bool(required)
    where = (
        SubsetCategoryRow.org_id == ctx.org_id,
        SubsetCategoryRow.workspace_id == workspace_id,
        SubsetCategoryRow.parent_model_id == parent_model_id,
    )
    current = {
        name: req
        for name, req in session.execute(
            select(SubsetCategoryRow.name, SubsetCategoryRow.required).where(*where)
        )
    }
    if current == wanted:
        return False
    session.execute(delete(SubsetCategoryRow).where(*where))
    for name, required in sorted(wanted.items()):
        session.add(
            SubsetCategoryRow(
                org_id=ctx.org_id,
                workspace_id=workspace_id,
                parent_model_id=parent_model_id,
                name=name,
                required=required,
            )
        )
    session.flush()
    groups = workspace_impact(session, ctx.org_id, [workspace_id])
    record(
        session,
        ctx,
        "config.subsets.updated",
        "subset_categories",
        workspace_id,
        groups,
        f"{parent_model_id}: {', '.join(sorted(wanted)) or '(none)'}",
    )
    return True


def _check_resource(resource_type: str, resource_id: str) -> None:
    if resource_type not in RESOURCE_TYPES:
        raise ConfigError("type", f"unknown resource type {resource_type!r}")
    if not resource_id or len(resource_id) > 255:
        raise ConfigError("id", "must be 1-255 characters")


def put_resource(
    session: Session,
    ctx: WriteContext,
    workspace_id: str,
    *,
    resource_type: str,
    resource_id: str,
    labels: Mapping[str, str],
) -> bool:
    """Register a resource or replace its labels; returns whether anything changed."""
    get_workspace(session, ctx.org_id, workspace_id, "workspace_id")
    _check_resource(resource_type, resource_id)
    for key, value in labels.items():
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise ConfigError(f"labels.{key}", "labels map non-empty strings to strings")
    row = session.get(RegisteredResourceRow, (ctx.org_id, workspace_id, resource_type, resource_id))
    if row is not None and row.labels == dict(labels):
        return False
    if row is None:
        session.add(
            RegisteredResourceRow(
                org_id=ctx.org_id,
                workspace_id=workspace_id,
                type=resource_type,
                resource_id=resource_id,
                labels=dict(labels),
                updated_at=utcnow(),
            )
        )
    else:
        row.labels, row.updated_at = dict(labels), utcnow()
    session.flush()
    groups = workspace_impact(session, ctx.org_id, [workspace_id])
    record(
        session,
        ctx,
        "config.resource.updated",
        "resource",
        None,
        groups,
        f"{workspace_id}/{resource_type}/{resource_id}",
    )
    return True


def delete_resource(
    session: Session, ctx: WriteContext, workspace_id: str, resource_type: str, resource_id: str
) -> None:
    row = session.get(RegisteredResourceRow, (ctx.org_id, workspace_id, resource_type, resource_id))
    if row is None:
        raise NotFoundError(
            "id", f"no registered {resource_type} {resource_id!r} in {workspace_id!r}"
        )
    session.delete(row)
    session.flush()
    groups = workspace_impact(session, ctx.org_id, [workspace_id])
    record(
        session,
        ctx,
        "config.resource.deleted",
        "resource",
        None,
        groups,
        f"{workspace_id}/{resource_type}/{resource_id}",
    )
