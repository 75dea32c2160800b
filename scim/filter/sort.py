"""Layer: store. `sortBy` / `sortOrder` (RFC 7644 §3.4.2.3) compiled to ORDER BY expressions.

- Strings sort by code point on both backends (`COLLATE "C"` on PostgreSQL, like the
  gt/lt filters); caseExact=false ones by lower(value) (userName by `user_name_norm`,
  Group displayName by `display_name_norm`).
- Multi-valued attributes sort by the primary value's (sub-)attribute, else the first
  value's; `groups` / `members` (no order, no primary) by their smallest value.
- Resources without a value sort last when ascending, first when descending.
- `id` is always appended (same direction) so that paging is stable.
- An invalid `sortBy` (syntax or unknown attribute) or `sortOrder` raises InvalidValue:
  RFC 7644 defines invalidFilter for the `filter` parameter only, and Table 9 describes
  invalidValue as a request value not compatible with the attribute/operation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import func
from sqlalchemy.sql.elements import SQLColumnExpression

from scim.errors import InvalidFilter, InvalidValue
from scim.filter.parser import parse_attr_path
from scim.filter.semantics import STRING_TYPES, path_text, resolve_path
from scim.filter.storage import Dialect, Operand, Storage, check_dialect
from scim.schemas import ResolvedAttribute, ResourceType


def compile_sort(
    sort_by: str | None,
    sort_order: str | None,
    resource: ResourceType,
    *,
    dialect_name: str,
) -> list[Any]:
    """ORDER BY clauses for `sortBy`, `sortOrder` (no sortBy: meta.created, then id)."""
    storage = Storage(resource, check_dialect(dialect_name))
    descending = _descending(sort_order)
    table = storage.table
    if sort_by is None:
        keys: list[Any] = [table.created_at, table.id]
        return [key.desc() if descending else key.asc() for key in keys]
    value, nullable = _sort_value(storage, _resolve(resource, sort_by))
    first = value.desc() if descending else value.asc()
    if nullable:
        first = first.nulls_first() if descending else first.nulls_last()
    return [first, table.id.desc() if descending else table.id.asc()]


def _descending(order: str | None) -> bool:
    if order is None or order.lower() == "ascending":
        return False
    if order.lower() == "descending":
        return True
    raise InvalidValue(f"sortOrder must be 'ascending' or 'descending', not {order!r}")


def _resolve(resource: ResourceType, text: str) -> ResolvedAttribute:
    try:
        path = parse_attr_path(text)
    except InvalidFilter as exc:
        raise InvalidValue(f"sortBy: {exc.detail}") from None
    resolved = resolve_path(resource, path)
    if resolved is None:
        raise InvalidValue(f"sortBy: unknown attribute '{path_text(path)}' for {resource.name}")
    if resolved.leaf.returned == "never":
        raise InvalidValue(f"sortBy: attribute '{path_text(path)}' cannot be sorted on")
    return resolved


def _key_for(dialect: Dialect) -> Callable[[Operand], SQLColumnExpression[Any]]:
    """Sort key: lower() for caseExact=false strings; code-point order on both backends."""

    def key(operand: Operand) -> SQLColumnExpression[Any]:
        if operand.attr.type not in STRING_TYPES:
            return operand.expr
        value = operand.expr
        if not (operand.case_exact or operand.normalized):
            value = func.lower(value)
        return value.collate("C") if dialect == "postgresql" else value

    return key


def _sort_value(storage: Storage, resolved: ResolvedAttribute) -> tuple[Any, bool]:
    """(sort expression, whether it can be NULL)."""
    attr = resolved.attr
    where = attr.name if resolved.sub is None else f"{attr.name}.{resolved.sub.name}"
    key = _key_for(storage.dialect)
    try:
        if attr.multi_valued:
            sub = resolved.sub or attr.sub("value")
            if sub is None:
                raise InvalidValue(f"sortBy: name a sub-attribute of '{attr.name}'")
            return storage.collection(resolved).sort_value(sub, key), True
        if resolved.sub is None and attr.type == "complex":
            raise InvalidValue(f"sortBy: name a sub-attribute of '{where}'")
        operand = storage.operand(resolved)
    except InvalidFilter as exc:
        raise InvalidValue(f"sortBy: {exc.detail}") from None
    return key(operand), operand.nullable
