"""Layer: app. Reads of computed access: effective permissions, explain, who-can, legacy conflicts.

Every answer is ``models.access.AccessModel``'s, evaluated on the current SQL state
(``config_loader``); nothing here re-implements the semantics. Candidate users for
listings are the members of groups that can matter (bound in the workspace's tree,
or organization admins): a user in no such group has no role there.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.orm import Session

from idsync.admin_api.auth import DB, Admin
from idsync.admin_api.config_routes import ERRORS
from idsync.admin_api.schemas import (
    ConfigProblemOut,
    ExplainIn,
    LegacyConflictOut,
    ResourceRefIn,
    UserPermissionsOut,
    WhoCanIn,
    WhoCanOut,
)
from idsync.admin_api.views import conflict_out, what_can_out
from models.access.access_model import AccessModel
from models.access.config_checks import config_problems
from models.access.inputs import ResourceRef, labels_of
from models.access.refs import SyncRef
from models.db.config_errors import ConfigError, ForbiddenError, NotFoundError
from models.db.config_impact import groups_bound_in, org_admin_groups, workspace_trees
from models.db.config_loader import load_org_config, load_user_inputs, users_in_groups
from models.db.config_store import get_workspace
from models.db.config_tables import ConfigWorkspace

router = APIRouter(responses=ERRORS, tags=["access"])


def resource_ref(body: ResourceRefIn | None) -> ResourceRef | None:
    if body is None:
        return None
    return ResourceRef(
        type=body.type,
        id=body.id,
        space_id=body.space_id,
        labels=None if body.labels is None else labels_of(body.labels),
        subsets=(
            None
            if body.subsets is None
            else frozenset((k, v) for k, vs in body.subsets.items() for v in vs)
        ),
        space_scoped=body.space_scoped,
    )


def candidate_users(session: Session, org_id: str, ws_ids: list[str]) -> set[str]:
    """Members of the groups that can hold a role in ``ws_ids`` (their trees) or everywhere."""
    tree = workspace_trees(session, org_id, ws_ids)
    groups = groups_bound_in(session, org_id, tree) | org_admin_groups(session, org_id)
    return users_in_groups(session, org_id, groups)


@router.get("/users/{user_id}/permissions")
def user_permissions(user_id: str, admin: Admin, db: DB) -> UserPermissionsOut:
    """A user's effective permissions in every workspace (environments included)."""
    with db.read() as s:
        users = load_user_inputs(s, admin.org_id, [user_id])
        config = load_org_config(s, admin.org_id)
    user = users.get(user_id)
    if user is None:
        raise NotFoundError("user_id", f"no user {user_id!r} in this organization")
    model = AccessModel(config)
    return UserPermissionsOut(
        user_id=user.id,
        active=user.active,
        group_ids=sorted(user.group_ids),
        workspaces=[what_can_out(model.what_can(user, w.id)) for w in config.workspaces],
    )


def _ref_or_id(value: ResourceRefIn | str | None) -> ResourceRef | str | None:
    return value if value is None or isinstance(value, str) else resource_ref(value)


SYNC_FIELDS = ("source", "destination", "action", "space_id", "id", "labels", "model")
CHECK_FIELDS = ("grant", "resource")


def _explain_form(body: ExplainIn) -> str:
    """``check`` or ``sync``; fields of the other form are refused (422 naming one)."""
    given = body.model_fields_set
    form = body.type or ("sync" if given & {"source", "destination", "action"} else "check")
    other = SYNC_FIELDS if form == "check" else CHECK_FIELDS
    for name in other:
        if getattr(body, name) is not None:
            raise ConfigError(name, f"not part of a {form} question")
    needed = ("grant",) if form == "check" else ("source", "destination", "action")
    for name in needed:
        if getattr(body, name) is None:
            raise ConfigError(name, f"required in a {form} question")
    return form


@router.post("/explain")
def explain(body: ExplainIn, admin: Admin, db: DB) -> dict[str, Any]:
    """Why a check answers what it answers: the answer (``status``, ``allowed``,
    ``reason``), groups, roles, bindings (with the rule or 'manual' that made them),
    decision rules, and for a deny what is ``missing``.

    Takes the body of a check or of a sync check (``user``, ``workspace``…). An unknown
    workspace is 422 naming ``workspace``; unknown or inactive users get a deny, never
    an error.
    """
    if body.org is not None and body.org != admin.org_id:
        raise ForbiddenError("org", "this admin key belongs to another organization")
    form = _explain_form(body)
    with db.read() as s:
        get_workspace(s, admin.org_id, body.workspace, "workspace")
        users = load_user_inputs(s, admin.org_id, [body.user])
        config = load_org_config(s, admin.org_id)
    model = AccessModel(config)
    user = users.get(body.user)
    if form == "sync":
        source, destination = _ref_or_id(body.source), _ref_or_id(body.destination)
        assert source is not None and destination is not None and body.action is not None
        sync = SyncRef.of(
            source,
            destination,
            body.space_id,
            id=body.id,
            labels=None if body.labels is None else labels_of(body.labels),
            model=_ref_or_id(body.model),
        )
        result = model.explain_sync(user, body.workspace, sync, body.action)
    else:
        assert body.grant is not None
        result = model.explain(user, body.workspace, body.grant, resource_ref(body.resource))
    out = result.to_dict()
    out["user"] = body.user
    return out


@router.post("/who-can")
def who_can(body: WhoCanIn, admin: Admin, db: DB) -> WhoCanOut:
    """Users allowed ``grant`` (on ``resource``) in ``workspace``."""
    with db.read() as s:
        get_workspace(s, admin.org_id, body.workspace, "workspace")
        config = load_org_config(s, admin.org_id)
        users = load_user_inputs(
            s, admin.org_id, candidate_users(s, admin.org_id, [body.workspace])
        )
    ids = AccessModel(config).who_can(
        users.values(), body.workspace, body.grant, resource_ref(body.resource)
    )
    return WhoCanOut(workspace=body.workspace, grant=body.grant, users=list(ids))


@router.get("/reports/config-problems")
def config_problems_report(admin: Admin, db: DB) -> list[ConfigProblemOut]:
    """What the stored configuration holds that the evaluator ignores or that can only
    deny: e.g. a bound role whose subset limit names a category its workspace does not
    have (categories deleted later, or a binding a mapping rule made)."""
    with db.read() as s:
        config = load_org_config(s, admin.org_id)
    return [
        ConfigProblemOut(kind=p.kind, id=p.id, field=p.field, message=p.message)
        for p in config_problems(config)
    ]


@router.get("/reports/legacy-conflicts")
def legacy_conflicts(admin: Admin, db: DB) -> list[LegacyConflictOut]:
    """Users whose groups give several legacy roles in one legacy workspace, with the
    role applied (decision legacy.one_role_per_user) and the ones shadowed."""
    with db.read() as s:
        legacy = list(
            s.scalars(
                select(ConfigWorkspace.id).where(
                    ConfigWorkspace.org_id == admin.org_id,
                    ConfigWorkspace.permissions_model == "legacy",
                )
            )
        )
        config = load_org_config(s, admin.org_id)
        users = load_user_inputs(s, admin.org_id, candidate_users(s, admin.org_id, legacy))
    return [conflict_out(c) for c in AccessModel(config).legacy_conflicts(users.values())]
