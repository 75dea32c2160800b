"""Layer: app. Declarative configuration files (YAML or JSON): ``idsync apply FILE [--dry-run]``.

The file describes an organization's access configuration; applying it makes the
database match, through the same store functions (and validation) as the admin API,
in ONE transaction: any error and nothing is written. Applying the same file twice
is a no-op the second time (no change rows).

Sections present in the file are authoritative (objects missing from them are
deleted); sections left out are not touched. Inside a listed workspace the same
holds for ``spaces``, ``subset_categories`` and ``resources``. Only manual bindings
are managed here; rule-made bindings follow from ``mapping_rules``.

Groups come from the IdP, so bindings name them by ``displayName`` (a plain string)
or ``{id: ...}`` / ``{externalId: ...}`` / ``{displayName: ...}``.

A dry run performs the whole apply inside a transaction that is rolled back, so it
validates exactly like the real thing and prints the same diff.

IdP connections (``connections:``, credentials named by environment variable, never
inlined) are ``idsync.declared_connections``'s.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import ScalarResult, func, select
from sqlalchemy.orm import Session

from idsync.config_inputs import RoleIn, RuleIn, SubsetCategoryIn, role_definition, rule_spec
from idsync.connection_inputs import ConnectionInFile
from idsync.declared_connections import apply_connections
from idsync.declared_webhooks import WebhookInFile, apply_webhooks
from models.access.config_checks import config_problems
from models.access.inputs import MANUAL
from models.db import config_store as store
from models.db.config_errors import ConfigError
from models.db.config_loader import load_org_config
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
from models.db.database import Database
from models.db.tables import Change, Group, Organization

# --- file model ---------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SpaceDecl(_Strict):
    id: str
    name: str = ""


class ResourceDecl(_Strict):
    type: str
    id: str
    labels: dict[str, str] = {}


class WorkspaceInFile(store.WorkspaceSpec):
    """A workspace entry of the file: the workspace's settings (the store's
    ``WorkspaceSpec``, handed to it as is) and the sections it owns."""

    spaces: list[SpaceDecl] | None = None
    subset_categories: dict[str, list[SubsetCategoryIn]] | None = Field(
        default=None, description="parent model id -> categories"
    )
    resources: list[ResourceDecl] | None = None


GroupRef = str | dict[str, str]
_Binding = TypeVar("_Binding", OrgAdminBindingRow, RoleBindingRow, SpaceAssignmentRow)


class OrgAdminDecl(_Strict):
    group: GroupRef


class RoleBindingDecl(_Strict):
    group: GroupRef
    workspace: str
    role: str


class SpaceAssignmentDecl(_Strict):
    group: GroupRef
    workspace: str
    space: str


class BindingsDecl(_Strict):
    org_admins: list[OrgAdminDecl] | None = None
    roles: list[RoleBindingDecl] | None = None
    spaces: list[SpaceAssignmentDecl] | None = None


class RuleDecl(RuleIn):
    id: str


class ConfigFile(_Strict):
    organization: str | None = None
    workspaces: list[WorkspaceInFile] | None = None
    roles: list[RoleIn] | None = None
    bindings: BindingsDecl | None = None
    mapping_rules: list[RuleDecl] | None = None
    connections: list[ConnectionInFile] | None = None
    webhooks: list[WebhookInFile] | None = None  # docs/events.md


def _pydantic_field(exc: PydanticValidationError) -> tuple[str, str]:
    first = exc.errors()[0]
    path = ""
    for part in first.get("loc", ()):
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path, str(first.get("msg", "invalid"))


def _syntax_error(exc: yaml.YAMLError | json.JSONDecodeError) -> str:
    """One line, with the position and without the parser's own source name."""
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} (line {exc.lineno}, column {exc.colno})"
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return f"{problem}{where}"


def parse_config(text: str, *, source: str = "<config>") -> ConfigFile:
    """Parse YAML (a superset of JSON) and validate the shape; ConfigError names the field."""
    try:
        data = yaml.safe_load(text) if not source.endswith(".json") else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError("", f"not valid YAML/JSON: {_syntax_error(exc)}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("", "the top level must be a mapping")
    try:
        return ConfigFile.model_validate(data)
    except PydanticValidationError as exc:
        where, message = _pydantic_field(exc)
        raise ConfigError(where, message) from exc


def load_config_file(path: Path) -> ConfigFile:
    return parse_config(path.read_text(encoding="utf-8"), source=str(path))


# --- plan / apply ------------------------------------------------------------------------------


@dataclass
class ApplyResult:
    diff: list[str] = field(default_factory=list)
    change_rows: int = 0
    problems: list[str] = field(default_factory=list)
    evaluations: int = 0
    """Regular expressions the full application of the mapping rules ran (regex rule x
    group): the cost of the run, which grows with rules x groups."""

    @property
    def changed(self) -> bool:
        return bool(self.diff)


@contextmanager
def _under(where: str) -> Iterator[None]:
    """Re-raise a store ConfigError with the file path (``roles[2]``) prefixed."""
    try:
        yield
    except ConfigError as exc:
        raise exc.under(where) from exc


def _resolve_group(session: Session, org_id: str, ref: GroupRef, where: str) -> tuple[str, str]:
    """(group id, display name) of a group reference."""
    if isinstance(ref, str):
        key, value = "displayName", ref
    elif len(ref) == 1 and next(iter(ref)) in ("id", "externalId", "displayName"):
        key, value = next(iter(ref.items()))
    else:
        raise ConfigError(f"{where}.group", "use a displayName, {id: …} or {externalId: …}")
    query = select(Group.id, Group.display_name).where(Group.org_id == org_id)
    if key == "id":
        query = query.where(Group.id == value)
    elif key == "externalId":
        query = query.where(Group.external_id == value)
    else:
        query = query.where(Group.display_name_norm == value.lower())
    rows = session.execute(query).all()
    if len(rows) != 1:
        what = "no group" if not rows else "more than one group"
        raise ConfigError(f"{where}.group", f"{what} with {key} {value!r} in this organization")
    return rows[0][0], rows[0][1]


def _depth(parents: dict[str, str | None], ws_id: str) -> int:
    """How many parents a workspace has above it (a → b → c: c has 2)."""
    depth, seen = 0, {ws_id}
    parent = parents.get(ws_id)
    while parent is not None and parent not in seen:
        seen.add(parent)
        depth += 1
        parent = parents.get(parent)
    return depth


def _ordered(decls: list[WorkspaceInFile]) -> list[tuple[int, WorkspaceInFile]]:
    """Workspaces with parents before their environments (file order otherwise)."""
    listed = {w.id for w in decls}
    done: set[str] = set()
    out: list[tuple[int, WorkspaceInFile]] = []
    pending = list(enumerate(decls))
    while pending:
        rest = []
        for i, w in pending:
            parent = w.parent_workspace_id
            if parent is None or parent not in listed or parent in done:
                out.append((i, w))
                done.add(w.id)
            else:
                rest.append((i, w))
        if len(rest) == len(pending):  # a cycle: let validation report it
            out.extend(rest)
            break
        pending = rest
    return out


class _Applier:
    def __init__(self, session: Session, ctx: store.WriteContext) -> None:
        self.s = session
        self.ctx = ctx
        self.org = ctx.org_id
        self.diff: list[str] = []

    # -- workspaces ------------------------------------------------------------------

    def workspaces(self, decls: list[WorkspaceInFile]) -> None:
        existing = {
            w.id: w
            for w in self.s.scalars(
                select(ConfigWorkspace).where(ConfigWorkspace.org_id == self.org)
            )
        }
        for i, decl in _ordered(decls):
            where = f"workspaces[{i}]"
            current = existing.get(decl.id)
            if current is None:
                with _under(where):
                    store.create_workspace(self.s, self.ctx, decl)
                self.diff.append(f"+ workspace {decl.id} ({decl.permissions_model})")
            else:
                after = decl.settings()
                before = {k: getattr(current, k) for k in after}
                changes = [
                    f"{k}: {before[k]!r} -> {after[k]!r}" for k in before if before[k] != after[k]
                ]
                if changes:
                    with _under(where):
                        store.update_workspace(self.s, self.ctx, decl)
                    self.diff.append(f"~ workspace {decl.id}: " + ", ".join(changes))
        for i, decl in enumerate(decls):
            where = f"workspaces[{i}]"
            if decl.spaces is not None:
                self.spaces(decl, where)
            if decl.subset_categories is not None:
                self.subsets(decl, where)
            if decl.resources is not None:
                self.resources(decl, where)

    def delete_workspaces(self, decls: list[WorkspaceInFile]) -> None:
        wanted = {w.id for w in decls}
        rows = {
            w.id: w.parent_workspace_id
            for w in self.s.scalars(
                select(ConfigWorkspace).where(ConfigWorkspace.org_id == self.org)
            )
        }
        doomed = [w for w in rows if w not in wanted]
        doomed.sort(key=lambda w: _depth(rows, w), reverse=True)  # environments first
        for ws_id in doomed:
            with _under("workspaces"):
                store.delete_workspace(self.s, self.ctx, ws_id)
            self.diff.append(f"- workspace {ws_id}")

    def spaces(self, decl: WorkspaceInFile, where: str) -> None:
        assert decl.spaces is not None
        current = {
            sp.id: sp
            for sp in self.s.scalars(
                select(ConfigSpace).where(
                    ConfigSpace.org_id == self.org, ConfigSpace.workspace_id == decl.id
                )
            )
        }
        for j, sp in enumerate(decl.spaces):
            at = f"{where}.spaces[{j}]"
            row = current.pop(sp.id, None)
            if row is None:
                with _under(at):
                    store.create_space(self.s, self.ctx, sp.id, decl.id, sp.name)
                self.diff.append(f"+ space {sp.id} in {decl.id}")
            elif row.name != sp.name:
                with _under(at):
                    store.update_space(self.s, self.ctx, decl.id, sp.id, sp.name)
                self.diff.append(f"~ space {sp.id}: name {row.name!r} -> {sp.name!r}")
        for space_id in sorted(current):
            with _under(f"{where}.spaces"):
                store.delete_space(self.s, self.ctx, decl.id, space_id)
            self.diff.append(f"- space {space_id} in {decl.id}")

    def subsets(self, decl: WorkspaceInFile, where: str) -> None:
        assert decl.subset_categories is not None
        current = set(
            self.s.scalars(
                select(SubsetCategoryRow.parent_model_id).where(
                    SubsetCategoryRow.org_id == self.org, SubsetCategoryRow.workspace_id == decl.id
                )
            )
        )
        wanted = dict(decl.subset_categories)
        for pm in sorted(current - set(wanted)):
            wanted[pm] = []
        for pm, cats in wanted.items():
            pairs = [(c.name, c.required) for c in cats]
            with _under(f"{where}.subset_categories.{pm}"):
                changed = store.set_subset_categories(self.s, self.ctx, decl.id, pm, pairs)
            if changed:
                names = ", ".join(f"{n}{'*' if r else ''}" for n, r in pairs) or "(none)"
                self.diff.append(f"~ subset categories {decl.id}/{pm}: {names}")

    def resources(self, decl: WorkspaceInFile, where: str) -> None:
        assert decl.resources is not None
        current = {
            (r.type, r.resource_id)
            for r in self.s.scalars(
                select(RegisteredResourceRow).where(
                    RegisteredResourceRow.org_id == self.org,
                    RegisteredResourceRow.workspace_id == decl.id,
                )
            )
        }
        for j, res in enumerate(decl.resources):
            current.discard((res.type, res.id))
            with _under(f"{where}.resources[{j}]"):
                changed = store.put_resource(
                    self.s,
                    self.ctx,
                    decl.id,
                    resource_type=res.type,
                    resource_id=res.id,
                    labels=res.labels,
                )
            if changed:
                self.diff.append(f"~ resource {decl.id}/{res.type}/{res.id}: labels {res.labels}")
        for rtype, rid in sorted(current):
            with _under(f"{where}.resources"):
                store.delete_resource(self.s, self.ctx, decl.id, rtype, rid)
            self.diff.append(f"- resource {decl.id}/{rtype}/{rid}")

    # -- roles -----------------------------------------------------------------------

    def roles(self, decls: list[RoleIn]) -> None:
        current = {
            r.id: r for r in self.s.scalars(select(CustomRole).where(CustomRole.org_id == self.org))
        }
        for i, role in enumerate(decls):
            where = f"roles[{i}]"
            with _under(where):
                definition = role_definition(role)
            row = current.get(role.id)
            if row is None:
                write, line = store.create_role, f"+ role {role.id} ({role.model})"
            elif (row.name, row.model, row.definition) != (role.name, role.model, definition):
                write, line = store.update_role, f"~ role {role.id}"
            else:
                continue
            with _under(where):
                write(
                    self.s,
                    self.ctx,
                    role.id,
                    name=role.name,
                    model=role.model,
                    definition=definition,
                )
            self.diff.append(line)

    def delete_roles(self, decls: list[RoleIn]) -> None:
        wanted = {r.id for r in decls}
        for role_id in sorted(
            self.s.scalars(select(CustomRole.id).where(CustomRole.org_id == self.org))
        ):
            if role_id not in wanted:
                with _under("roles"):
                    store.delete_role(self.s, self.ctx, role_id)
                self.diff.append(f"- role {role_id}")

    # -- bindings --------------------------------------------------------------------

    def bindings(self, decl: BindingsDecl) -> None:
        if decl.org_admins is not None:
            current = {row.group_id: row for row in self._manual(OrgAdminBindingRow)}
            for i, oa in enumerate(decl.org_admins):
                where = f"bindings.org_admins[{i}]"
                gid, name = _resolve_group(self.s, self.org, oa.group, where)
                if current.pop(gid, None) is None:
                    with _under(where):
                        store.create_org_admin_binding(self.s, self.ctx, gid)
                    self.diff.append(f"+ org admin {name}")
            for row in current.values():
                self._delete_binding("org_admin_binding", row.id, f"- org admin {row.group_id}")
        if decl.roles is not None:
            current_rb: dict[tuple[str, str, str], RoleBindingRow] = {
                (row.group_id, row.workspace_id, row.role_id): row
                for row in self._manual(RoleBindingRow)
            }
            wanted: list[tuple[int, str, str, RoleBindingDecl]] = []
            for i, rb in enumerate(decl.roles):
                where = f"bindings.roles[{i}]"
                gid, name = _resolve_group(self.s, self.org, rb.group, where)
                if current_rb.pop((gid, rb.workspace, rb.role), None) is None:
                    wanted.append((i, gid, name, rb))
            for i, gid, name, rb in wanted:
                where = f"bindings.roles[{i}]"
                # the group's binding in this workspace that the file no longer lists:
                # its role changed (one change in place, not a delete and a create)
                old = next((k for k in sorted(current_rb) if k[:2] == (gid, rb.workspace)), None)
                if old is not None:
                    old_row = current_rb.pop(old)
                    with _under(where):
                        store.change_role_binding(self.s, self.ctx, old_row.id, rb.role)
                    self.diff.append(f"~ binding {name} -> {rb.workspace}: {old[2]} -> {rb.role}")
                    continue
                with _under(where):
                    store.create_role_binding(self.s, self.ctx, gid, rb.workspace, rb.role)
                self.diff.append(f"+ binding {name} -> {rb.workspace}/{rb.role}")
            for (g, w, r), rb_row in sorted(current_rb.items()):
                self._delete_binding("role_binding", rb_row.id, f"- binding {g} -> {w}/{r}")
        if decl.spaces is not None:
            current_sa: dict[tuple[str, str, str], SpaceAssignmentRow] = {
                (row.group_id, row.workspace_id, row.space_id): row
                for row in self._manual(SpaceAssignmentRow)
            }
            for i, sa in enumerate(decl.spaces):
                where = f"bindings.spaces[{i}]"
                gid, name = _resolve_group(self.s, self.org, sa.group, where)
                if current_sa.pop((gid, sa.workspace, sa.space), None) is None:
                    with _under(where):
                        store.create_space_assignment(self.s, self.ctx, gid, sa.workspace, sa.space)
                    self.diff.append(f"+ space assignment {name} -> {sa.workspace}/{sa.space}")
            for (g, w, sp), sa_row in sorted(current_sa.items()):
                self._delete_binding(
                    "space_assignment", sa_row.id, f"- space assignment {g} -> {w}/{sp}"
                )

    def _manual(self, table: type[_Binding]) -> ScalarResult[_Binding]:
        """The organization's manual bindings in ``table`` (rule-made ones follow their rule)."""
        return self.s.scalars(select(table).where(table.org_id == self.org, table.source == MANUAL))

    def _delete_binding(self, kind: str, binding_id: str, line: str) -> None:
        with _under("bindings"):
            store.delete_binding(self.s, self.ctx, kind, binding_id)
        self.diff.append(line)

    # -- mapping rules -----------------------------------------------------------------

    def rules(self, decls: list[RuleDecl]) -> None:
        current = {
            r.id
            for r in self.s.scalars(select(MappingRuleRow).where(MappingRuleRow.org_id == self.org))
        }
        for i, rule in enumerate(decls):
            where = f"mapping_rules[{i}]"
            spec = rule_spec(rule.id, rule)
            if rule.id not in current:
                with _under(where):
                    store.create_rule(self.s, self.ctx, spec)
                self.diff.append(f"+ mapping rule {rule.id}")
            else:
                current.discard(rule.id)
                row = self.s.get(MappingRuleRow, (self.org, rule.id))
                assert row is not None
                if any(getattr(row, f) != getattr(spec, f) for f in store.RULE_FIELDS):
                    with _under(where):
                        store.update_rule(self.s, self.ctx, spec)
                    self.diff.append(f"~ mapping rule {rule.id}")
        for rule_id in sorted(current):
            with _under("mapping_rules"):
                store.delete_rule(self.s, self.ctx, rule_id)
            self.diff.append(f"- mapping rule {rule_id}")


def apply_config(session: Session, org_id: str, config: ConfigFile, *, actor: str) -> ApplyResult:
    """Make the organization's configuration match ``config`` (in the caller's transaction)."""
    ctx = store.WriteContext(org_id=org_id, actor=actor, defer_rules=True)
    applier = _Applier(session, ctx)
    before = session.scalar(select(func.count()).select_from(Change).where(Change.org_id == org_id))
    # creates and updates, dependencies first (a workspace's subset categories before
    # the roles whose limits name them, when those roles are bound already)
    if config.workspaces is not None:
        applier.workspaces(config.workspaces)
    if config.roles is not None:
        applier.roles(config.roles)
    if config.mapping_rules is not None:
        applier.rules(config.mapping_rules)
    if config.bindings is not None:
        applier.bindings(config.bindings)
    if config.connections is not None:
        applier.diff += apply_connections(session, org_id, config.connections)
    if config.webhooks is not None:
        applier.diff += apply_webhooks(session, org_id, config.webhooks)
    # deletions, dependents first
    if config.workspaces is not None:
        applier.delete_workspaces(config.workspaces)
    if config.roles is not None:
        applier.delete_roles(config.roles)
    rules = store.apply_mapping_rules(session, org_id, actor=actor)
    for kind, group, target, source in rules.created:
        applier.diff.append(f"+ rule-made {kind} {group} -> {target or 'organization'} ({source})")
    for kind, group, target, source in rules.removed:
        applier.diff.append(f"- rule-made {kind} {group} -> {target or 'organization'} ({source})")
    after = session.scalar(select(func.count()).select_from(Change).where(Change.org_id == org_id))
    problems = [
        f"rule {p.rule_id}, group {p.group_id}: {p.field}: {p.message}" for p in rules.problems
    ]
    problems.extend(
        f"{p.kind} {p.id}: {p.field}: {p.message}"
        for p in config_problems(load_org_config(session, org_id))
    )
    return ApplyResult(
        diff=applier.diff,
        change_rows=int(after or 0) - int(before or 0),
        problems=problems,
        evaluations=rules.evaluations,
    )


class _DryRun(Exception):
    def __init__(self, result: ApplyResult) -> None:
        super().__init__("dry run")
        self.result = result


def apply_file(
    db: Database, org_name: str | None, config: ConfigFile, *, dry_run: bool, actor: str
) -> ApplyResult:
    """Apply ``config`` to the organization named in the file or by ``org_name``.

    One transaction; ``dry_run`` rolls it back (nothing is written, the diff is the same).
    """
    name = org_name or config.organization
    if name is None:
        raise ConfigError("organization", "name the organization in the file or with --org")
    if org_name and config.organization and org_name != config.organization:
        raise ConfigError("organization", f"file is for {config.organization!r}, not {org_name!r}")
    try:
        with db.write() as session:
            org_id = session.scalar(select(Organization.id).where(Organization.name == name))
            if org_id is None:
                raise ConfigError("organization", f"no organization named {name!r}")
            result = apply_config(session, org_id, config, actor=actor)
            if dry_run:
                raise _DryRun(result)
    except _DryRun as dry:
        dry.result.change_rows = 0
        return dry.result
    return result


__all__ = [
    "ApplyResult",
    "ConfigFile",
    "apply_config",
    "apply_file",
    "load_config_file",
    "parse_config",
]
