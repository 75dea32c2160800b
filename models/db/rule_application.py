"""Layer: store. Mapping-rule application: stored rules + SCIM groups -> rule-made binding rows.

Matching and target resolution are ``models.access.mapping_rules``'s; this module
loads the inputs, diffs the produced bindings against the rule-made rows in SQL
(``source`` = a rule id) and writes the difference. Manual rows are never read
for deletion, so a rule can never remove what a person made.

Idempotent: re-applying unchanged rules to unchanged groups writes nothing and
records no change row.

Bounded: an application can be scoped to some rules and some groups (the rule-made
rows outside the scope are neither read nor written). A rule write re-applies that
rule only; a workspace, Space or role write re-applies only the (rule, group) pairs
whose result it can change (``reapply_for_targets``), usually none. A full application
(every rule on every group) runs in chunks of groups (``apply_to_next_groups``), each
its own short transaction of at most ``CHUNK_EVALUATIONS`` rule x group pairs: the
worker's ``idsync.rules.apply`` task (``worker.rule_jobs``) and ``apply_in_chunks``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from models.access.errors import UnsafePatternError
from models.access.inputs import MANUAL, OrgConfig
from models.access.mapping_rules import (
    MappingProblem,
    MappingRule,
    ScimGroup,
    compile_pattern,
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
    binding_key,
)
from models.db.database import Database, record_change
from models.db.tables import Group

CHUNK_EVALUATIONS: Final = 5_000
"""Rule x group pairs one chunk of a full application evaluates at most. The costliest
pattern allowed (``MAX_PROGRAM_SIZE``) measured ~0.4 ms per 500-character name, so a
chunk's transaction stays within ~2 s; ordinary rules take a few ms per chunk."""
MAX_CHUNK_GROUPS: Final = 1_000

# (kind, group_id, target, source): target is "" (org admin), "ws/role" or "ws/space".
BindingKey = tuple[str, str, str, str]
TargetKind = Literal["workspace", "space", "role"]


@dataclass
class RuleApplication:
    """What one application of the mapping rules did."""

    created: list[BindingKey] = field(default_factory=list)
    removed: list[BindingKey] = field(default_factory=list)
    problems: list[MappingProblem] = field(default_factory=list)
    affected_group_ids: set[str] = field(default_factory=set)
    revision: int | None = None
    evaluations: int = 0
    """Regular expressions run (one per regex rule and group): the work done."""
    groups: int = 0
    """Groups a chunk of a full application covered (``apply_to_next_groups``)."""

    @property
    def changed(self) -> bool:
        return bool(self.created or self.removed)

    def merge(self, other: RuleApplication) -> None:
        self.created.extend(other.created)
        self.removed.extend(other.removed)
        self.problems.extend(other.problems)
        self.affected_group_ids |= other.affected_group_ids
        self.evaluations += other.evaluations
        self.groups += other.groups


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


def load_rules(
    session: Session, org_id: str, rule_ids: Collection[str] | None = None
) -> list[MappingRule]:
    """Enabled rules of the organization (of ``rule_ids`` when given), in application
    order (position, id)."""
    query = select(MappingRuleRow).where(
        MappingRuleRow.org_id == org_id, MappingRuleRow.enabled.is_(True)
    )
    if rule_ids is not None:
        query = query.where(MappingRuleRow.id.in_(sorted(rule_ids)))
    rows = session.scalars(query.order_by(MappingRuleRow.position, MappingRuleRow.id))
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


def _existing(
    session: Session,
    org_id: str,
    group_ids: Sequence[str] | None,
    rule_ids: Collection[str] | None = None,
) -> set[BindingKey]:
    """Rule-made binding rows of ``group_ids`` (all groups when None) made by
    ``rule_ids`` (any rule when None)."""
    out: set[BindingKey] = set()
    batches: Iterable[list[str] | None] = [None] if group_ids is None else chunks(group_ids)
    sources = None if rule_ids is None else sorted(rule_ids)
    for chunk in batches:
        oa = select(OrgAdminBindingRow.group_id, OrgAdminBindingRow.source).where(
            OrgAdminBindingRow.org_id == org_id, OrgAdminBindingRow.source != MANUAL
        )
        rb = select(*binding_key(RoleBindingRow)).where(
            RoleBindingRow.org_id == org_id, RoleBindingRow.source != MANUAL
        )
        sa = select(*binding_key(SpaceAssignmentRow)).where(
            SpaceAssignmentRow.org_id == org_id, SpaceAssignmentRow.source != MANUAL
        )
        if sources is not None:
            oa = oa.where(OrgAdminBindingRow.source.in_(sources))
            rb = rb.where(RoleBindingRow.source.in_(sources))
            sa = sa.where(SpaceAssignmentRow.source.in_(sources))
        if chunk is not None:
            oa = oa.where(OrgAdminBindingRow.group_id.in_(chunk))
            rb = rb.where(RoleBindingRow.group_id.in_(chunk))
            sa = sa.where(SpaceAssignmentRow.group_id.in_(chunk))
        out.update(("org_admin", g, "", s) for g, s in session.execute(oa))
        out.update(("workspace_role", g, f"{w}/{r}", s) for g, w, r, s in session.execute(rb))
        out.update(("space", g, f"{w}/{sp}", s) for g, w, sp, s in session.execute(sa))
    return out


def _insert(session: Session, org_id: str, key: BindingKey) -> None:
    kind, group_id, target, source = key
    if kind == "org_admin":
        session.add(OrgAdminBindingRow(org_id=org_id, group_id=group_id, source=source))
    elif kind == "space":
        ws, _, space = target.partition("/")
        session.add(
            SpaceAssignmentRow(
                org_id=org_id, group_id=group_id, workspace_id=ws, space_id=space, source=source
            )
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
        ws, _, space = target.partition("/")
        session.execute(
            delete(SpaceAssignmentRow).where(
                SpaceAssignmentRow.org_id == org_id,
                SpaceAssignmentRow.group_id == group_id,
                SpaceAssignmentRow.workspace_id == ws,
                SpaceAssignmentRow.space_id == space,
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


def produce(
    rules: Sequence[MappingRule], groups: Sequence[ScimGroup], config: OrgConfig
) -> tuple[set[BindingKey], list[MappingProblem], int]:
    """Binding keys the rules produce, their problems, and the regex evaluations run."""
    result = produce_bindings(rules, groups, config)
    keys: set[BindingKey] = {("org_admin", b.group_id, "", b.source) for b in result.org_admins}
    keys.update(
        ("workspace_role", b.group_id, f"{b.workspace_id}/{b.role_id}", b.source)
        for b in result.role_bindings
    )
    keys.update(
        ("space", b.group_id, f"{b.workspace_id}/{b.space_id}", b.source)
        for b in result.space_assignments
    )
    return keys, list(result.problems), result.evaluations


def desired_bindings(
    rules: Sequence[MappingRule], groups: Sequence[ScimGroup], config: OrgConfig
) -> tuple[set[BindingKey], list[MappingProblem]]:
    keys, problems, _ = produce(rules, groups, config)
    return keys, problems


def _apply_scope(
    session: Session,
    org_id: str,
    config: OrgConfig,
    rules: Sequence[MappingRule],
    groups: Sequence[ScimGroup],
    *,
    rule_ids: Collection[str] | None,
    group_ids: Sequence[str] | None,
) -> RuleApplication:
    """Make the rule-made rows of ``group_ids`` x ``rule_ids`` (None: all) what ``rules``
    (the enabled ones of ``rule_ids``) produce for ``groups`` (those of ``group_ids``)."""
    desired, problems, evaluations = produce(rules, groups, config)
    existing = _existing(session, org_id, group_ids, rule_ids)
    report = RuleApplication(problems=problems, evaluations=evaluations)
    for key in sorted(existing - desired):
        _remove(session, org_id, key)
        report.removed.append(key)
    for key in sorted(desired - existing):
        _insert(session, org_id, key)
        report.created.append(key)
    report.affected_group_ids = {k[1] for k in (*report.created, *report.removed)}
    return report


def _record(
    session: Session, org_id: str, report: RuleApplication, actor: str, request_id: str | None
) -> None:
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


def apply_mapping_rules(
    session: Session,
    org_id: str,
    *,
    group_ids: Iterable[str] | None = None,
    rule_ids: Collection[str] | None = None,
    actor: str,
    request_id: str | None = None,
    record: bool = True,
) -> RuleApplication:
    """Create / remove the bindings ``rule_ids`` make for ``group_ids`` (None: every rule,
    every group). A rule of ``rule_ids`` that is disabled or gone loses its bindings.

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
    report = _apply_scope(
        session,
        org_id,
        config,
        load_rules(session, org_id, rule_ids),
        groups,
        rule_ids=rule_ids,
        group_ids=None if group_ids is None else known,
    )
    session.flush()
    if record and report.changed:
        _record(session, org_id, report, actor, request_id)
    return report


_TARGET_RULE_KINDS: dict[str, frozenset[str]] = {
    "workspace": frozenset({"workspace_role", "space"}),  # a space rule may name its workspace
    "role": frozenset({"workspace_role"}),
    "space": frozenset({"space"}),
}


def _captures(rule: MappingRule, target: TargetKind) -> bool:
    if rule.match != "regex":
        return False
    try:
        return target in compile_pattern(rule.pattern, rule.ignore_case).groupindex
    except UnsafePatternError:
        return False  # produces nothing whatever the targets (reported by a full apply)


def reapply_for_targets(
    session: Session,
    org_id: str,
    target: TargetKind,
    keys: Collection[str],
    *,
    actor: str,
    request_id: str | None = None,
    record: bool = False,
) -> RuleApplication:
    """Re-apply what a write to a workspace, Space or role can change, and no more.

    ``keys`` are the object's id and names (before and after the write). A rule
    resolves a target by id or name (roles: case-insensitive names), so the write can
    change the result of:

    - a rule whose fixed target (``workspace``, ``space``, ``role``) is one of ``keys``
      (case-insensitively): re-applied to every group;
    - a regex rule capturing that target: re-applied to the groups whose attribute
      contains one of ``keys`` (case-insensitively), since a capture is a substring of
      the attribute; the other groups' captures cannot name the object.

    Every other (rule, group) pair resolves as before and is not evaluated.
    """
    session.flush()
    folded = {k.casefold() for k in keys}
    whole: list[MappingRule] = []
    capturing: dict[str, list[MappingRule]] = {}
    for rule in load_rules(session, org_id):
        if rule.kind not in _TARGET_RULE_KINDS[target]:
            continue
        fixed = getattr(rule, target)
        if fixed is not None:
            if fixed.casefold() in folded:
                whole.append(rule)
        elif _captures(rule, target):
            capturing.setdefault(rule.attribute, []).append(rule)
    report = RuleApplication()
    if not whole and not capturing:
        return report
    groups = load_scim_groups(session, org_id, None)
    config = load_org_config(session, org_id)
    if whole:
        ids = {r.id for r in whole}
        report.merge(
            _apply_scope(session, org_id, config, whole, groups, rule_ids=ids, group_ids=None)
        )
    for attribute, rules in sorted(capturing.items()):
        named = [g for g in groups if _names_any(_value(g, attribute), folded)]
        if named:
            report.merge(
                _apply_scope(
                    session, org_id, config, rules, named,
                    rule_ids={r.id for r in rules}, group_ids=sorted(g.id for g in named),
                )
            )  # fmt: skip
    session.flush()
    if record and report.changed:
        _record(session, org_id, report, actor, request_id)
    return report


def _value(group: ScimGroup, attribute: str) -> str | None:
    return group.external_id if attribute == "externalId" else group.display_name


def _names_any(value: str | None, folded_keys: Collection[str]) -> bool:
    """Whether ``value`` contains one of the (casefolded) keys, case-insensitively.
    ``str.casefold`` maps each character on its own, so the casefold of a substring
    is a substring of the casefold."""
    if value is None:
        return False
    folded = value.casefold()
    return any(k in folded for k in folded_keys)


def chunk_groups(rule_count: int) -> int:
    """Groups per chunk of a full application of ``rule_count`` rules."""
    return max(1, min(MAX_CHUNK_GROUPS, CHUNK_EVALUATIONS // max(1, rule_count)))


def apply_to_next_groups(
    session: Session,
    org_id: str,
    after: str | None,
    *,
    actor: str,
    request_id: str | None = None,
    record: bool = True,
) -> tuple[RuleApplication, str | None]:
    """One chunk of a full application: every enabled rule on the next groups in id
    order after ``after`` (None: from the first), ``chunk_groups(rules)`` of them.

    Returns what it did and the ``after`` of the next chunk (None: that was the last).
    The chunk's rule-made rows are replaced as a whole (any rule, including disabled or
    deleted ones), exactly as ``apply_mapping_rules`` does for those groups, so the
    chunks of one pass together make what one full application makes; with ``record``
    and something changed, one ``config.rules.applied`` row names the chunk's groups.
    Problems that name no group (a stored pattern over the limits) are left out: every
    chunk would repeat them (``rule_problems`` reports them without evaluating groups).
    """
    session.flush()
    rules = load_rules(session, org_id)
    size = chunk_groups(len(rules))
    query = select(Group.id, Group.display_name, Group.external_id).where(Group.org_id == org_id)
    if after is not None:
        query = query.where(Group.id > after)
    groups = [
        ScimGroup(g, n, e) for g, n, e in session.execute(query.order_by(Group.id).limit(size))
    ]
    if not groups:
        return RuleApplication(), None
    report = _apply_scope(
        session,
        org_id,
        load_org_config(session, org_id),
        rules,
        groups,
        rule_ids=None,
        group_ids=[g.id for g in groups],
    )
    report.problems = [p for p in report.problems if p.group_id is not None]
    report.groups = len(groups)
    session.flush()
    if record and report.changed:
        _record(session, org_id, report, actor, request_id)
    return report, (groups[-1].id if len(groups) == size else None)


def apply_in_chunks(
    database: Database, org_id: str, *, actor: str, repair: bool = True
) -> RuleApplication:
    """Every rule on every group, chunk by chunk (``apply_to_next_groups``), each chunk
    its own transaction and change row; ``repair=False`` rolls every chunk back (a dry
    run: what would change). For operator commands and plain functions; the worker runs
    the same chunks as a time-limited task chain (``worker.rule_jobs``)."""
    total = RuleApplication()
    after: str | None = None
    while True:
        if repair:
            with database.write() as session:
                report, after = apply_to_next_groups(session, org_id, after, actor=actor)
        else:
            with database.sessions() as session:
                tx = session.begin()
                try:
                    report, after = apply_to_next_groups(
                        session, org_id, after, actor=actor, record=False
                    )
                finally:
                    tx.rollback()
        total.merge(report)
        if after is None:
            return total


def rule_problems(rules: Sequence[MappingRule]) -> list[MappingProblem]:
    """Problems of the rules themselves, found without evaluating any group: a stored
    regex over the limits (``group_id`` None)."""
    problems: list[MappingProblem] = []
    for rule in rules:
        if rule.match != "regex":
            continue
        try:
            compile_pattern(rule.pattern, rule.ignore_case)
        except UnsafePatternError as exc:
            problems.append(MappingProblem(rule.id, None, exc.field, exc.message))
    return problems
