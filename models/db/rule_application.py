"""Mapping-rule application: stored rules + SCIM groups -> rule-made binding rows.

Matching and target resolution are ``models.access.mapping_rules``'s; this module
loads the inputs, diffs the produced bindings against the rule-made rows in SQL
(``source`` = a rule id) and writes the difference. Manual rows are never read
for deletion, so a rule can never remove what a person made.

Idempotent: re-applying unchanged rules to unchanged groups writes nothing and
records no change row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from models.access.inputs import MANUAL, OrgConfig
from models.access.mapping_rules import (
    MappingProblem,
    MappingRule,
    ScimGroup,
)
from models.access.mapping_rules import (
    apply_mapping_rules as produce_bindings,
)
from models.db.config_loader import chunks, load_org_config
from models.db.config_tables import (
    MappingRuleRow,
    OrgAdminBindingRow,
    RoleBindingRow,
    SpaceAssignmentRow,
)
from models.db.database import record_change
from models.db.tables import Group

# (kind, group_id, target, source): target is "" (org admin), "ws/role" or a space id.
BindingKey = tuple[str, str, str, str]


@dataclass
class RuleApplication:
    """What one application of the mapping rules did."""

    created: list[BindingKey] = field(default_factory=list)
    removed: list[BindingKey] = field(default_factory=list)
    problems: list[MappingProblem] = field(default_factory=list)
    affected_group_ids: set[str] = field(default_factory=set)
    revision: int | None = None

    @property
    def changed(self) -> bool:
        return bool(self.created or self.removed)


def rule_from_row(row: MappingRuleRow) -> MappingRule:
    return MappingRule(
        id=row.id,
        attribute="externalId" if row.attribute == "externalId" else "displayName",
        match="regex" if row.match == "regex" else ("prefix" if row.match == "prefix" else "exact"),
        pattern=row.pattern,
        kind=(
            "org_admin"
            if row.kind == "org_admin"
            else ("space" if row.kind == "space" else "workspace_role")
        ),
        workspace=row.workspace,
        role=row.role,
        space=row.space,
        ignore_case=row.ignore_case,
    )


def load_rules(session: Session, org_id: str) -> list[MappingRule]:
    """Enabled rules of the organization, in application order (position, id)."""
    rows = session.scalars(
        select(MappingRuleRow)
        .where(MappingRuleRow.org_id == org_id, MappingRuleRow.enabled.is_(True))
        .order_by(MappingRuleRow.position, MappingRuleRow.id)
    )
    return [rule_from_row(r) for r in rows]


def load_scim_groups(
    session: Session, org_id: str, group_ids: Iterable[str] | None
) -> list[ScimGroup]:
    query = select(Group.id, Group.display_name, Group.external_id).where(Group.org_id == org_id)
    if group_ids is None:
        return [ScimGroup(g, n, e) for g, n, e in session.execute(query)]
    out: list[ScimGroup] = []
    for chunk in chunks(group_ids):
        out.extend(
            ScimGroup(g, n, e) for g, n, e in session.execute(query.where(Group.id.in_(chunk)))
        )
    return out


def _existing(session: Session, org_id: str, group_ids: Sequence[str] | None) -> set[BindingKey]:
    """Rule-made binding rows of ``group_ids`` (all groups when None)."""
    out: set[BindingKey] = set()
    batches: Iterable[list[str] | None] = [None] if group_ids is None else chunks(group_ids)
    for chunk in batches:
        oa = select(OrgAdminBindingRow.group_id, OrgAdminBindingRow.source).where(
            OrgAdminBindingRow.org_id == org_id, OrgAdminBindingRow.source != MANUAL
        )
        rb = select(
            RoleBindingRow.group_id,
            RoleBindingRow.workspace_id,
            RoleBindingRow.role_id,
            RoleBindingRow.source,
        ).where(RoleBindingRow.org_id == org_id, RoleBindingRow.source != MANUAL)
        sa = select(
            SpaceAssignmentRow.group_id, SpaceAssignmentRow.space_id, SpaceAssignmentRow.source
        ).where(SpaceAssignmentRow.org_id == org_id, SpaceAssignmentRow.source != MANUAL)
        if chunk is not None:
            oa = oa.where(OrgAdminBindingRow.group_id.in_(chunk))
            rb = rb.where(RoleBindingRow.group_id.in_(chunk))
            sa = sa.where(SpaceAssignmentRow.group_id.in_(chunk))
        out.update(("org_admin", g, "", s) for g, s in session.execute(oa))
        out.update(("workspace_role", g, f"{w}/{r}", s) for g, w, r, s in session.execute(rb))
        out.update(("space", g, sp, s) for g, sp, s in session.execute(sa))
    return out


def _insert(session: Session, org_id: str, key: BindingKey) -> None:
    kind, group_id, target, source = key
    if kind == "org_admin":
        session.add(OrgAdminBindingRow(org_id=org_id, group_id=group_id, source=source))
    elif kind == "space":
        session.add(
            SpaceAssignmentRow(org_id=org_id, group_id=group_id, space_id=target, source=source)
        )
    else:
        ws, _, role = target.partition("/")
        session.add(
            RoleBindingRow(
                org_id=org_id, group_id=group_id, workspace_id=ws, role_id=role, source=source
            )
        )


def _remove(session: Session, org_id: str, key: BindingKey) -> None:
    kind, group_id, target, source = key
    if kind == "org_admin":
        session.execute(
            delete(OrgAdminBindingRow).where(
                OrgAdminBindingRow.org_id == org_id,
                OrgAdminBindingRow.group_id == group_id,
                OrgAdminBindingRow.source == source,
            )
        )
    elif kind == "space":
        session.execute(
            delete(SpaceAssignmentRow).where(
                SpaceAssignmentRow.org_id == org_id,
                SpaceAssignmentRow.group_id == group_id,
                SpaceAssignmentRow.space_id == target,
                SpaceAssignmentRow.source == source,
            )
        )
    else:
        ws, _, role = target.partition("/")
        session.execute(
            delete(RoleBindingRow).where(
                RoleBindingRow.org_id == org_id,
                RoleBindingRow.group_id == group_id,
                RoleBindingRow.workspace_id == ws,
                RoleBindingRow.role_id == role,
                RoleBindingRow.source == source,
            )
        )


def desired_bindings(
    rules: Sequence[MappingRule], groups: Sequence[ScimGroup], config: OrgConfig
) -> tuple[set[BindingKey], list[MappingProblem]]:
    result = produce_bindings(rules, groups, config)
    keys: set[BindingKey] = {("org_admin", b.group_id, "", b.source) for b in result.org_admins}
    keys.update(
        ("workspace_role", b.group_id, f"{b.workspace_id}/{b.role_id}", b.source)
        for b in result.role_bindings
    )
    keys.update(("space", b.group_id, b.space_id, b.source) for b in result.space_assignments)
    return keys, list(result.problems)


def apply_mapping_rules(
    session: Session,
    org_id: str,
    *,
    group_ids: Iterable[str] | None = None,
    actor: str,
    request_id: str | None = None,
    record: bool = True,
) -> RuleApplication:
    """Create / remove rule-made bindings of ``group_ids`` (every group when None).

    Unknown group ids (deleted meanwhile, other organization) are ignored. Problems
    (a rule target that does not exist) are returned, never raised. With ``record``
    and something changed, a ``config.rules.applied`` change row names the groups
    whose bindings changed; callers that record their own change row pass
    ``record=False`` and merge ``affected_group_ids`` into it.
    """
    session.flush()
    groups = load_scim_groups(session, org_id, group_ids)
    known = sorted(g.id for g in groups)
    config = load_org_config(session, org_id)
    desired, problems = desired_bindings(load_rules(session, org_id), groups, config)
    existing = _existing(session, org_id, None if group_ids is None else known)
    report = RuleApplication(problems=problems)
    for key in sorted(existing - desired):
        _remove(session, org_id, key)
        report.removed.append(key)
    for key in sorted(desired - existing):
        _insert(session, org_id, key)
        report.created.append(key)
    session.flush()
    report.affected_group_ids = {k[1] for k in (*report.created, *report.removed)}
    if record and report.changed:
        report.revision = record_change(
            session,
            org_id=org_id,
            kind="config.rules.applied",
            resource_type="mapping_rule",
            resource_id=None,
            actor=actor,
            group_ids=sorted(report.affected_group_ids),
            request_id=request_id,
            summary=f"created={len(report.created)} removed={len(report.removed)}",
        )
    return report
