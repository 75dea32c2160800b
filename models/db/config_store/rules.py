"""Layer: store. Mapping rule writes: validated, stored, and re-applied to every group."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlalchemy import delete
from sqlalchemy.orm import Session

from models.access.errors import ValidationError
from models.access.inputs import MANUAL
from models.access.mapping_rules import validate_mapping_rule
from models.db.base import utcnow
from models.db.config_errors import ConfigError, ConflictError, NotFoundError
from models.db.config_store.context import WriteContext, check_id, reapply_rule, record
from models.db.config_tables import MappingRuleRow
from models.db.rule_application import RuleApplication, rule_from_row

POSITION_MIN: Final = -(2**31)
POSITION_MAX: Final = 2**31 - 1


@dataclass(frozen=True)
class RuleSpec:
    id: str
    attribute: str
    match: str
    pattern: str
    kind: str = "workspace_role"
    workspace: str | None = None
    role: str | None = None
    space: str | None = None
    ignore_case: bool = False
    description: str = ""
    enabled: bool = True
    position: int = 0


def validate_rule(spec: RuleSpec) -> None:
    """``models.access`` validation (RE2, captures, targets); ConfigError naming the field."""
    check_id(spec.id, "id")
    if spec.id == MANUAL:
        raise ConfigError("id", f"{MANUAL!r} is reserved for manual bindings")
    for name in ("workspace", "role", "space"):
        value = getattr(spec, name)
        if value is not None and not (0 < len(value) <= 200):
            raise ConfigError(name, "must be 1-200 characters")
    if not POSITION_MIN <= spec.position <= POSITION_MAX:  # an INTEGER column
        raise ConfigError("position", f"must be between {POSITION_MIN} and {POSITION_MAX}")
    # rule_from_row maps unknown enum values to defaults: check them first.
    if spec.attribute not in ("externalId", "displayName"):
        raise ConfigError("attribute", "must be 'externalId' or 'displayName'")
    if spec.match not in ("exact", "prefix", "regex"):
        raise ConfigError("match", "must be 'exact', 'prefix' or 'regex'")
    if spec.kind not in ("workspace_role", "space", "org_admin"):
        raise ConfigError("kind", "must be 'workspace_role', 'space' or 'org_admin'")
    try:
        validate_mapping_rule(rule_from_row(_rule_row(spec, "")))
    except ValidationError as exc:
        raise ConfigError(exc.field, exc.message) from exc


def _rule_row(spec: RuleSpec, org_id: str) -> MappingRuleRow:
    return MappingRuleRow(
        org_id=org_id,
        id=spec.id,
        description=spec.description,
        attribute=spec.attribute,
        match=spec.match,
        pattern=spec.pattern,
        ignore_case=spec.ignore_case,
        kind=spec.kind,
        workspace=spec.workspace,
        role=spec.role,
        space=spec.space,
        enabled=spec.enabled,
        position=spec.position,
    )


RULE_FIELDS: Final = (
    "description",
    "attribute",
    "match",
    "pattern",
    "ignore_case",
    "kind",
    "workspace",
    "role",
    "space",
    "enabled",
    "position",
)


def create_rule(
    session: Session, ctx: WriteContext, spec: RuleSpec
) -> tuple[MappingRuleRow, RuleApplication]:
    validate_rule(spec)
    if session.get(MappingRuleRow, (ctx.org_id, spec.id)) is not None:
        raise ConflictError("id", f"mapping rule {spec.id!r} already exists")
    row = _rule_row(spec, ctx.org_id)
    row.created_at = row.updated_at = utcnow()
    session.add(row)
    session.flush()
    rules = reapply_rule(session, ctx, spec.id)
    record(
        session,
        ctx,
        "config.rule.created",
        "mapping_rule",
        spec.id,
        rules.affected_group_ids,
        f"{spec.attribute} {spec.match} {spec.pattern!r}",
    )
    return row, rules


def update_rule(
    session: Session, ctx: WriteContext, spec: RuleSpec
) -> tuple[MappingRuleRow, RuleApplication]:
    row = session.get(MappingRuleRow, (ctx.org_id, spec.id))
    if row is None:
        raise NotFoundError("id", f"no mapping rule {spec.id!r} in this organization")
    validate_rule(spec)
    changed = {f for f in RULE_FIELDS if getattr(row, f) != getattr(spec, f)}
    if not changed:
        return row, RuleApplication()
    for f in changed:
        setattr(row, f, getattr(spec, f))
    row.updated_at = utcnow()
    session.flush()
    # What a rule makes does not depend on its description or position.
    rules = (
        reapply_rule(session, ctx, spec.id)
        if changed - {"description", "position"}
        else RuleApplication()
    )
    record(
        session,
        ctx,
        "config.rule.updated",
        "mapping_rule",
        spec.id,
        rules.affected_group_ids,
        ", ".join(sorted(changed)),
    )
    return row, rules


def delete_rule(session: Session, ctx: WriteContext, rule_id: str) -> RuleApplication:
    """Delete a rule and the bindings it made."""
    if session.get(MappingRuleRow, (ctx.org_id, rule_id)) is None:
        raise NotFoundError("id", f"no mapping rule {rule_id!r} in this organization")
    session.execute(
        delete(MappingRuleRow).where(
            MappingRuleRow.org_id == ctx.org_id, MappingRuleRow.id == rule_id
        )
    )
    session.expire_all()
    rules = reapply_rule(session, ctx, rule_id)
    record(session, ctx, "config.rule.deleted", "mapping_rule", rule_id, rules.affected_group_ids)
    return rules
