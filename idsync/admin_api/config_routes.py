"""Layer: app. CRUD for the access configuration: workspaces, Spaces, roles, bindings, subset
categories, registered resources, mapping rules. One transaction per request; every query is
scoped to the admin key's organization."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final, cast

from fastapi import APIRouter, Response
from sqlalchemy import func, select

from idsync.admin_api.auth import DB, Admin
from idsync.admin_api.errors import API_PREFIX
from idsync.admin_api.schemas import (
    BindingOut,
    ErrorOut,
    GroupOut,
    OrgAdminBindingIn,
    OrganizationOut,
    ParentModelSubsetsOut,
    ResourceIn,
    ResourceOut,
    RoleBindingChangeIn,
    RoleBindingIn,
    RoleOut,
    RuleApplyStatusOut,
    RuleJobOut,
    RuleOut,
    RuleProblemOut,
    RuleProblemsOut,
    RuleWriteOut,
    SpaceAssignmentIn,
    SpaceIn,
    SpaceOut,
    SpacePatch,
    SubsetCategoriesIn,
    WorkspaceIn,
    WorkspaceOut,
    WorkspacePatch,
)
from idsync.admin_api.views import (
    application_out,
    binding_out,
    builtin_role_out,
    custom_role_out,
    problem_out,
    rule_job_out,
    rule_out,
    space_out,
    workspace_out,
)
from idsync.admin_api.worker_link import SEND_ERRORS, Worker, broker_unavailable, no_worker
from idsync.config_inputs import RoleIn, RuleIn, SubsetCategoryIn, role_definition, rule_spec
from idsync.logs import get_request_id
from models.access.catalogue import BUILTIN_ROLES
from models.db import config_store as store
from models.db.admin_keys import AdminIdentity
from models.db.base import new_id
from models.db.config_errors import ConfigError, NotFoundError
from models.db.config_loader import load_org_config
from models.db.config_store import BindingRow
from models.db.config_tables import (
    ConfigSpace,
    ConfigWorkspace,
    CustomRole,
    MappingRuleRow,
    OrgAdminBindingRow,
    RegisteredResourceRow,
    RoleBindingRow,
    SpaceAssignmentRow,
    SubsetCategoryRow,
)
from models.db.rule_application import CHUNK_EVALUATIONS, load_rules, load_scim_groups, produce
from models.db.rule_application import rule_problems as rule_problems_of
from models.db.tables import Group, Organization
from worker import rule_jobs

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorOut} for code in (401, 404, 409, 422)
}
router = APIRouter(responses=ERRORS)
log = logging.getLogger("idsync.api")


def _id_or_new(given: str | None) -> str:
    """A generated id when the body leaves `id` out (or null); an empty string is an
    id like any other given one, and refused as such (422 on `id`), not replaced."""
    return new_id() if given is None else given


def _ctx(admin: AdminIdentity) -> store.WriteContext:
    """Who writes, for the change log: the key, and the request (as SCIM writes record
    it; the request-id middleware sets it for this request's context)."""
    return store.WriteContext(org_id=admin.org_id, actor=admin.actor, request_id=get_request_id())


# --- organization and groups ---------------------------------------------------------------


@router.get("/organization", tags=["organization"])
def get_organization(admin: Admin, db: DB) -> OrganizationOut:
    """The organization this admin key belongs to."""
    with db.read() as s:
        org = s.get(Organization, admin.org_id)
        assert org is not None
        return OrganizationOut(id=org.id, name=org.name, revision=org.revision)


@router.get("/groups", tags=["groups"])
def list_groups(admin: Admin, db: DB) -> list[GroupOut]:
    """SCIM groups of the organization (bind them by ``id``)."""
    with db.read() as s:
        rows = s.execute(
            select(Group.id, Group.display_name, Group.external_id)
            .where(Group.org_id == admin.org_id)
            .order_by(Group.display_name_norm)
        )
        return [GroupOut(id=g, display_name=n, external_id=e) for g, n, e in rows]


# --- workspaces ---------------------------------------------------------------------------


@router.get("/workspaces", tags=["workspaces"])
def list_workspaces(admin: Admin, db: DB) -> list[WorkspaceOut]:
    with db.read() as s:
        rows = s.scalars(
            select(ConfigWorkspace)
            .where(ConfigWorkspace.org_id == admin.org_id)
            .order_by(ConfigWorkspace.id)
        )
        return [workspace_out(w) for w in rows]


@router.post("/workspaces", status_code=201, tags=["workspaces"])
def create_workspace(body: WorkspaceIn, admin: Admin, db: DB) -> WorkspaceOut:
    spec = store.WorkspaceSpec(id=_id_or_new(body.id), **body.model_dump(exclude={"id"}))
    with db.write() as s:
        return workspace_out(store.create_workspace(s, _ctx(admin), spec))


@router.get("/workspaces/{workspace_id}", tags=["workspaces"])
def get_workspace(workspace_id: str, admin: Admin, db: DB) -> WorkspaceOut:
    with db.read() as s:
        return workspace_out(store.get_workspace(s, admin.org_id, workspace_id))


@router.patch("/workspaces/{workspace_id}", tags=["workspaces"])
def update_workspace(workspace_id: str, body: WorkspacePatch, admin: Admin, db: DB) -> WorkspaceOut:
    """Change settings; fields left out keep theirs (``parent_workspace_id: null`` detaches)."""
    given = body.model_fields_set
    with db.write() as s:
        ws = store.get_workspace(s, admin.org_id, workspace_id)
        spec = store.WorkspaceSpec(
            id=ws.id,
            name=body.name if body.name is not None else ws.name,
            permissions_model=body.permissions_model or ws.permissions_model,
            spaces_enabled=(
                body.spaces_enabled if body.spaces_enabled is not None else ws.spaces_enabled
            ),
            approvals_required=(
                body.approvals_required
                if body.approvals_required is not None
                else ws.approvals_required
            ),
            parent_workspace_id=(
                body.parent_workspace_id
                if "parent_workspace_id" in given
                else ws.parent_workspace_id
            ),
        )
        return workspace_out(store.update_workspace(s, _ctx(admin), spec))


@router.delete("/workspaces/{workspace_id}", status_code=204, tags=["workspaces"])
def delete_workspace(workspace_id: str, admin: Admin, db: DB) -> Response:
    """Delete a workspace with its Spaces, bindings, subset categories and resources."""
    with db.write() as s:
        store.delete_workspace(s, _ctx(admin), workspace_id)
    return Response(status_code=204)


# --- Spaces ----------------------------------------------------------------------------------


@router.get("/spaces", tags=["spaces"])
def list_spaces(admin: Admin, db: DB, workspace_id: str | None = None) -> list[SpaceOut]:
    with db.read() as s:
        query = select(ConfigSpace).where(ConfigSpace.org_id == admin.org_id)
        if workspace_id is not None:
            query = query.where(ConfigSpace.workspace_id == workspace_id)
        order = (ConfigSpace.workspace_id, ConfigSpace.id)
        return [space_out(sp) for sp in s.scalars(query.order_by(*order))]


@router.post("/spaces", status_code=201, tags=["spaces"])
def create_space(body: SpaceIn, admin: Admin, db: DB) -> SpaceOut:
    with db.write() as s:
        sp = store.create_space(s, _ctx(admin), _id_or_new(body.id), body.workspace_id, body.name)
        return space_out(sp)


@router.get("/workspaces/{workspace_id}/spaces/{space_id}", tags=["spaces"])
def get_space(workspace_id: str, space_id: str, admin: Admin, db: DB) -> SpaceOut:
    """A Space of a workspace (Space ids are unique per workspace)."""
    with db.read() as s:
        return space_out(store.get_space(s, admin.org_id, workspace_id, space_id))


@router.patch("/workspaces/{workspace_id}/spaces/{space_id}", tags=["spaces"])
def update_space(
    workspace_id: str, space_id: str, body: SpacePatch, admin: Admin, db: DB
) -> SpaceOut:
    """Rename a Space (a Space never moves)."""
    with db.write() as s:
        return space_out(store.update_space(s, _ctx(admin), workspace_id, space_id, body.name))


@router.delete("/workspaces/{workspace_id}/spaces/{space_id}", status_code=204, tags=["spaces"])
def delete_space(workspace_id: str, space_id: str, admin: Admin, db: DB) -> Response:
    with db.write() as s:
        store.delete_space(s, _ctx(admin), workspace_id, space_id)
    return Response(status_code=204)


# --- roles -------------------------------------------------------------------------------------


@router.get("/roles", tags=["roles"])
def list_roles(admin: Admin, db: DB, builtin: bool = True) -> list[RoleOut]:
    """Built-in roles (unless ``builtin=false``) and the organization's custom roles."""
    out = [builtin_role_out(r) for r in BUILTIN_ROLES.values()] if builtin else []
    with db.read() as s:
        rows = s.scalars(
            select(CustomRole).where(CustomRole.org_id == admin.org_id).order_by(CustomRole.id)
        )
        out.extend(custom_role_out(r) for r in rows)
    return out


@router.post("/roles", status_code=201, tags=["roles"])
def create_role(body: RoleIn, admin: Admin, db: DB) -> RoleOut:
    with db.write() as s:
        row = store.create_role(
            s, _ctx(admin), body.id, name=body.name, model=body.model,
            definition=role_definition(body),
        )  # fmt: skip
        return custom_role_out(row)


@router.get("/roles/{role_id}", tags=["roles"])
def get_role(role_id: str, admin: Admin, db: DB) -> RoleOut:
    if role_id in BUILTIN_ROLES:
        return builtin_role_out(BUILTIN_ROLES[role_id])
    with db.read() as s:
        row = s.get(CustomRole, (admin.org_id, role_id))
        if row is None:
            raise NotFoundError("id", f"no role {role_id!r}")
        return custom_role_out(row)


@router.put("/roles/{role_id}", tags=["roles"])
def replace_role(role_id: str, body: RoleIn, admin: Admin, db: DB) -> RoleOut:
    if body.id != role_id:
        raise ConfigError("id", "must equal the id in the path")
    with db.write() as s:
        row = store.update_role(
            s, _ctx(admin), role_id, name=body.name, model=body.model,
            definition=role_definition(body),
        )  # fmt: skip
        return custom_role_out(row)


@router.delete("/roles/{role_id}", status_code=204, tags=["roles"])
def delete_role(role_id: str, admin: Admin, db: DB) -> Response:
    with db.write() as s:
        store.delete_role(s, _ctx(admin), role_id)
    return Response(status_code=204)


# --- bindings ----------------------------------------------------------------------------------


@router.get("/bindings", tags=["bindings"])
def list_bindings(
    admin: Admin,
    db: DB,
    group_id: str | None = None,
    workspace_id: str | None = None,
    source: str | None = None,
) -> list[BindingOut]:
    """Every binding (org admin, role, Space) with its provenance, optionally filtered."""
    out: list[BindingOut] = []
    with db.read() as s:
        for table in (OrgAdminBindingRow, RoleBindingRow, SpaceAssignmentRow):
            query = select(table).where(table.org_id == admin.org_id)
            if group_id is not None:
                query = query.where(table.group_id == group_id)
            if source is not None:
                query = query.where(table.source == source)
            if workspace_id is not None:
                if table is OrgAdminBindingRow:
                    pass  # org admins hold every workspace
                elif table is RoleBindingRow:
                    query = query.where(RoleBindingRow.workspace_id == workspace_id)
                else:
                    query = query.where(SpaceAssignmentRow.workspace_id == workspace_id)
            rows = cast(
                Sequence[BindingRow],
                s.scalars(query.order_by(table.group_id, table.created_at, table.id)).all(),
            )
            out.extend(binding_out(r) for r in rows)
    return out


@router.post("/bindings/org-admins", status_code=201, tags=["bindings"])
def bind_org_admin(body: OrgAdminBindingIn, admin: Admin, db: DB) -> BindingOut:
    """Make a group organization admin (workspace admin in every workspace)."""
    with db.write() as s:
        return binding_out(store.create_org_admin_binding(s, _ctx(admin), body.group_id))


@router.post("/bindings/roles", status_code=201, tags=["bindings"])
def bind_role(body: RoleBindingIn, admin: Admin, db: DB) -> BindingOut:
    """Give a group a role in a workspace."""
    with db.write() as s:
        row = store.create_role_binding(
            s, _ctx(admin), body.group_id, body.workspace_id, body.role_id
        )
        return binding_out(row)


@router.post("/bindings/spaces", status_code=201, tags=["bindings"])
def assign_space(body: SpaceAssignmentIn, admin: Admin, db: DB) -> BindingOut:
    """Assign a group to a Space (visibility only; the group still needs a role)."""
    with db.write() as s:
        return binding_out(
            store.create_space_assignment(
                s, _ctx(admin), body.group_id, body.workspace_id, body.space_id
            )
        )


@router.put("/bindings/roles/{binding_id}", tags=["bindings"])
@router.patch("/bindings/roles/{binding_id}", tags=["bindings"])
def change_binding_role(
    binding_id: str, body: RoleBindingChangeIn, admin: Admin, db: DB
) -> BindingOut:
    """Give a manual role binding another role, in place (one change row; the group's
    members are recomputed). Its group and workspace never change."""
    with db.write() as s:
        row = store.change_role_binding(s, _ctx(admin), binding_id, body.role_id)
        return binding_out(row)


_KINDS = {"org-admins": "org_admin_binding", "roles": "role_binding", "spaces": "space_assignment"}


@router.delete("/bindings/{kind}/{binding_id}", status_code=204, tags=["bindings"])
def delete_binding(kind: str, binding_id: str, admin: Admin, db: DB) -> Response:
    """Delete a manual binding (``kind``: org-admins, roles, spaces)."""
    if kind not in _KINDS:
        raise NotFoundError("kind", "must be org-admins, roles or spaces")
    with db.write() as s:
        store.delete_binding(s, _ctx(admin), _KINDS[kind], binding_id)
    return Response(status_code=204)


# --- subset categories --------------------------------------------------------------------------


@router.get("/workspaces/{workspace_id}/subset-categories", tags=["subsets"])
def list_subset_categories(workspace_id: str, admin: Admin, db: DB) -> list[ParentModelSubsetsOut]:
    with db.read() as s:
        store.get_workspace(s, admin.org_id, workspace_id)
        rows = s.scalars(
            select(SubsetCategoryRow)
            .where(
                SubsetCategoryRow.org_id == admin.org_id,
                SubsetCategoryRow.workspace_id == workspace_id,
            )
            .order_by(SubsetCategoryRow.parent_model_id, SubsetCategoryRow.name)
        )
        by_model: dict[str, list[SubsetCategoryIn]] = {}
        for r in rows:
            by_model.setdefault(r.parent_model_id, []).append(
                SubsetCategoryIn(name=r.name, required=r.required)
            )
    return [
        ParentModelSubsetsOut(workspace_id=workspace_id, parent_model_id=pm, categories=cats)
        for pm, cats in by_model.items()
    ]


@router.put(
    "/workspaces/{workspace_id}/parent-models/{parent_model_id}/subset-categories",
    tags=["subsets"],
)
def set_subset_categories(
    workspace_id: str, parent_model_id: str, body: SubsetCategoriesIn, admin: Admin, db: DB
) -> ParentModelSubsetsOut:
    """Replace the subset categories of a parent model (an empty list removes them)."""
    with db.write() as s:
        store.set_subset_categories(
            s,
            _ctx(admin),
            workspace_id,
            parent_model_id,
            [(c.name, c.required) for c in body.categories],
        )
    return ParentModelSubsetsOut(
        workspace_id=workspace_id, parent_model_id=parent_model_id, categories=body.categories
    )


# --- registered resources ------------------------------------------------------------------------


@router.get("/workspaces/{workspace_id}/resources", tags=["resources"])
def list_resources(workspace_id: str, admin: Admin, db: DB) -> list[ResourceOut]:
    with db.read() as s:
        store.get_workspace(s, admin.org_id, workspace_id)
        rows = s.scalars(
            select(RegisteredResourceRow)
            .where(
                RegisteredResourceRow.org_id == admin.org_id,
                RegisteredResourceRow.workspace_id == workspace_id,
            )
            .order_by(RegisteredResourceRow.type, RegisteredResourceRow.resource_id)
        )
        return [
            ResourceOut(workspace_id=r.workspace_id, type=r.type, id=r.resource_id, labels=r.labels)
            for r in rows
        ]


@router.put(
    "/workspaces/{workspace_id}/resources/{resource_type}/{resource_id}", tags=["resources"]
)
def put_resource(
    workspace_id: str,
    resource_type: str,
    resource_id: str,
    *,
    body: ResourceIn,
    admin: Admin,
    db: DB,
) -> ResourceOut:
    """Register a resource's labels (legacy label-based conditions)."""
    with db.write() as s:
        store.put_resource(
            s, _ctx(admin), workspace_id, resource_type=resource_type,
            resource_id=resource_id, labels=body.labels,
        )  # fmt: skip
    return ResourceOut(
        workspace_id=workspace_id, type=resource_type, id=resource_id, labels=body.labels
    )


@router.delete(
    "/workspaces/{workspace_id}/resources/{resource_type}/{resource_id}",
    status_code=204,
    tags=["resources"],
)
def delete_resource(
    workspace_id: str, resource_type: str, resource_id: str, admin: Admin, db: DB
) -> Response:
    with db.write() as s:
        store.delete_resource(s, _ctx(admin), workspace_id, resource_type, resource_id)
    return Response(status_code=204)


# --- mapping rules -----------------------------------------------------------------------------


@router.get("/mapping-rules", tags=["mapping rules"])
def list_rules(admin: Admin, db: DB) -> list[RuleOut]:
    with db.read() as s:
        rows = s.scalars(
            select(MappingRuleRow)
            .where(MappingRuleRow.org_id == admin.org_id)
            .order_by(MappingRuleRow.position, MappingRuleRow.id)
        )
        return [rule_out(r) for r in rows]


@router.post("/mapping-rules", status_code=201, tags=["mapping rules"])
def create_rule(body: RuleIn, admin: Admin, db: DB) -> RuleWriteOut:
    """Create a rule and apply it to every group (the response says what it did)."""
    with db.write() as s:
        row, app = store.create_rule(s, _ctx(admin), rule_spec(_id_or_new(body.id), body))
        return RuleWriteOut(rule=rule_out(row), application=application_out(app))


PROBLEMS_EVALUATION_BUDGET: Final = CHUNK_EVALUATIONS
"""Rule x group pairs ``GET /mapping-rules/problems`` evaluates live at most: what one
chunk of a full application evaluates (the costliest pattern allowed: ~2 s; ordinary
rules: tens of ms). Beyond it the answer is the last full application's."""


@router.get("/mapping-rules/problems", tags=["mapping rules"])
def rule_problems(admin: Admin, db: DB, worker: Worker) -> RuleProblemsOut:
    """Unresolvable targets and unusable rules. Evaluated now when the organization's
    rules x groups are within ``evaluation_budget`` (then also the bindings the rules
    produce); else those the last full application found (its job, revision and
    finish time), plus the rules' own problems checked now. Writes nothing."""
    with db.read() as s:
        org = s.get(Organization, admin.org_id)
        assert org is not None
        revision = int(org.revision)
        rules = load_rules(s, admin.org_id)
        groups = int(s.scalar(select(func.count()).where(Group.org_id == admin.org_id)) or 0)
        if len(rules) * groups <= PROBLEMS_EVALUATION_BUDGET:
            live = load_scim_groups(s, admin.org_id, None)
            desired, problems, evaluations = produce(rules, live, load_org_config(s, admin.org_id))
            app = store.RuleApplication(created=sorted(desired), problems=problems)
            out = application_out(app)
            return RuleProblemsOut(
                source="live",
                job=None,
                revision=revision,
                computed_at=datetime.now(UTC),
                evaluations=evaluations,
                evaluation_budget=PROBLEMS_EVALUATION_BUDGET,
                problems=out.problems,
                problems_total=len(out.problems),
                bindings=out.created,
            )
    own = [problem_out(p) for p in rule_problems_of(rules)]
    last: dict[str, str] = {}
    stored: list[RuleProblemOut] = []
    if worker.client is not None:
        _current, last = rule_jobs.status(worker.client, admin.org_id)
        if last:
            stored = [
                RuleProblemOut(**p) for p in rule_jobs.last_problems(worker.client, admin.org_id)
            ]
    job = rule_job_out(last)
    return RuleProblemsOut(
        source="none" if job is None else "last_application",
        job=None if job is None else job.job,
        revision=None if job is None else job.revision,
        computed_at=None if job is None else job.finished_at,
        evaluations=0,
        evaluation_budget=PROBLEMS_EVALUATION_BUDGET,
        problems=own + stored,
        problems_total=len(own) + (0 if job is None else job.problems),
        bindings=None,
    )


APPLY_LOCATION: Final = f"{API_PREFIX}/mapping-rules/apply"


@router.post(
    "/mapping-rules/apply",
    status_code=202,
    tags=["mapping rules"],
    responses={503: {"model": ErrorOut}},
)
def apply_rules(admin: Admin, db: DB, worker: Worker, response: Response) -> RuleJobOut:
    """Request a full application (every rule to every group, idempotent). The worker
    runs it in chunks of groups; poll ``GET /mapping-rules/apply`` (``Location``). A job
    still queued is returned instead of a second one; a running one is superseded (the
    new job sees this request's state)."""
    if worker.client is None:
        raise no_worker()
    with db.read() as s:
        org = s.get(Organization, admin.org_id)
        assert org is not None
        revision = int(org.revision)
    try:
        fields, _new = rule_jobs.request(
            worker.client,
            worker.send_rules_apply,
            admin.org_id,
            revision=revision,
            actor=admin.actor,
            request_id=get_request_id(),
        )
    except SEND_ERRORS as exc:
        log.warning("full application not enqueued: %s", type(exc).__name__)
        raise broker_unavailable() from exc
    job = rule_job_out(fields)
    assert job is not None
    response.headers["Location"] = APPLY_LOCATION
    return job


@router.get("/mapping-rules/apply", tags=["mapping rules"], responses={503: {"model": ErrorOut}})
def apply_status(admin: Admin, worker: Worker) -> RuleApplyStatusOut:
    """The latest full application requested and the latest finished (counts, times)."""
    if worker.client is None:
        raise no_worker()
    current, last = rule_jobs.status(worker.client, admin.org_id)
    return RuleApplyStatusOut(current=rule_job_out(current), last=rule_job_out(last))


@router.get("/mapping-rules/{rule_id}", tags=["mapping rules"])
def get_rule(rule_id: str, admin: Admin, db: DB) -> RuleOut:
    with db.read() as s:
        row = s.get(MappingRuleRow, (admin.org_id, rule_id))
        if row is None:
            raise NotFoundError("id", f"no mapping rule {rule_id!r}")
        return rule_out(row)


@router.put("/mapping-rules/{rule_id}", tags=["mapping rules"])
def replace_rule(rule_id: str, body: RuleIn, admin: Admin, db: DB) -> RuleWriteOut:
    if body.id is not None and body.id != rule_id:
        raise ConfigError("id", "must equal the id in the path")
    with db.write() as s:
        row, app = store.update_rule(s, _ctx(admin), rule_spec(rule_id, body))
        return RuleWriteOut(rule=rule_out(row), application=application_out(app))


@router.delete("/mapping-rules/{rule_id}", tags=["mapping rules"])
def delete_rule(rule_id: str, admin: Admin, db: DB) -> RuleWriteOut:
    """Delete a rule; the bindings it made go with it."""
    with db.write() as s:
        app = store.delete_rule(s, _ctx(admin), rule_id)
    return RuleWriteOut(rule=None, application=application_out(app))
