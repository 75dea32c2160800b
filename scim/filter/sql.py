"""Layer: store. Compile a filter AST to one SQL boolean expression (RFC 7644 §3.4.2.2).

The result is meant for `select(User|Group).where(org scoping, compile_filter(...))`:
everything is evaluated by the database (no rows are loaded to filter in Python).

Semantics:
- Every compiled predicate is two-valued (never SQL NULL): a comparison on an absent
  or null attribute is FALSE, so `not (title eq "x")` matches users without a title.
- `ne` is exactly `not eq`: it matches resources where the attribute is absent.
- On multi-valued attributes a comparison means "some value satisfies it"
  (`emails.type ne "work"`: some email whose type is not work); `attr[filter]` applies
  the whole filter to one and the same value.
- `eq null` is "not present", `ne null` is "present".
- `pr`: present and not null; strings also non-empty; multi-valued: at least one value;
  single-valued complex: some sub-attribute present.
- caseExact=false compares lower() of both sides; ordering comparisons on strings are by
  code point on both backends (`COLLATE "C"` on PostgreSQL, SQLite's binary order).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String, and_, func, literal, not_, or_, true
from sqlalchemy.sql.elements import SQLColumnExpression

from scim.errors import InvalidFilter
from scim.filter.ast import And, Compare, Filter, Not, Or, Present, ValuePath
from scim.filter.semantics import (
    ORDER_OPS,
    STRING_TYPES,
    ComparisonValue,
    comparison_value,
    default_sub,
    path_text,
    resolve_filter_path,
    sub_attribute,
)
from scim.filter.storage import Dialect, Operand, Scope, Storage, check_dialect
from scim.schemas import Attribute, ResolvedAttribute, ResourceType

_ORDER: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "eq": operator.eq,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}
LIKE_ESCAPE = "\\"


def compile_filter(
    flt: Filter, resource: ResourceType, *, dialect_name: str
) -> ColumnElement[bool]:
    """SQL boolean expression over `User`/`Group` matching `flt`; raises InvalidFilter."""
    return _Compiler(Storage(resource, check_dialect(dialect_name))).filter(flt)


class _Compiler:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.dialect: Dialect = storage.dialect

    def filter(self, node: Filter) -> ColumnElement[bool]:
        if isinstance(node, And):
            return and_(self.filter(node.left), self.filter(node.right))
        if isinstance(node, Or):
            return or_(self.filter(node.left), self.filter(node.right))
        if isinstance(node, Not):
            return not_(self.filter(node.expr))
        if isinstance(node, ValuePath):
            return self.value_path(node)
        return self.attribute_test(node)

    def attribute_test(self, node: Compare | Present) -> ColumnElement[bool]:
        resolved = resolve_filter_path(self.storage.resource, node.path)
        where = path_text(node.path)
        attr = resolved.attr
        if attr.multi_valued:
            collection = self.storage.collection(resolved)
            if resolved.sub is None and isinstance(node, Present):
                return collection.nonempty()
            sub = resolved.sub or default_sub(attr)
            return collection.any(lambda scope: self.predicate(scope.operand(sub), node, where))
        if attr.type == "complex" and resolved.sub is None:
            if not isinstance(node, Present):
                raise InvalidFilter(f"'{where}' is complex: compare one of its sub-attributes")
            return self.complex_present(resolved.schema, attr)
        return self.predicate(self.storage.operand(resolved), node, where)

    def complex_present(self, schema: str, attr: Attribute) -> ColumnElement[bool]:
        if attr.name == "meta" and attr.mutability == "readOnly":
            return true()
        subs = (ResolvedAttribute(schema, attr, sub) for sub in attr.sub_attributes)
        return or_(*(present(self.storage.operand(resolved)) for resolved in subs))

    def value_path(self, node: ValuePath) -> ColumnElement[bool]:
        resolved = resolve_filter_path(self.storage.resource, node.path)
        attr = resolved.attr
        if resolved.sub is not None or attr.type != "complex":
            raise InvalidFilter(
                f"'{path_text(node.path)}[...]' needs a complex attribute before the '['"
            )
        if attr.multi_valued:
            collection = self.storage.collection(resolved)
            return collection.any(lambda scope: self.element(node.filter, attr, scope))
        return self.element(node.filter, attr, _ObjectScope(self.storage, resolved.schema, attr))

    def element(self, node: Filter, parent: Attribute, scope: Scope) -> ColumnElement[bool]:
        """`node` applied to one complex value (`scope`) of `parent`."""
        if isinstance(node, And):
            return and_(
                self.element(node.left, parent, scope), self.element(node.right, parent, scope)
            )
        if isinstance(node, Or):
            return or_(
                self.element(node.left, parent, scope), self.element(node.right, parent, scope)
            )
        if isinstance(node, Not):
            return not_(self.element(node.expr, parent, scope))
        if isinstance(node, ValuePath):
            raise InvalidFilter(f"value filters cannot be nested inside '{parent.name}[...]'")
        sub = sub_attribute(parent, node.path)
        return self.predicate(scope.operand(sub), node, f"{parent.name}.{sub.name}")

    def predicate(
        self, operand: Operand, node: Compare | Present, where: str
    ) -> ColumnElement[bool]:
        if isinstance(node, Present):
            return present(operand)
        value = comparison_value(operand.attr, node.op, node.value, where)
        if value is None:
            return present(operand) if node.op == "ne" else not_(present(operand))
        if node.op == "ne":
            return not_(compare(operand, "eq", value, self.dialect))
        return compare(operand, node.op, value, self.dialect)


class _ObjectScope:
    """Sub-attributes of a single-valued complex attribute (`name[givenName eq "x"]`)."""

    def __init__(self, storage: Storage, schema: str, parent: Attribute) -> None:
        self.storage = storage
        self.schema = schema
        self.parent = parent

    def operand(self, sub: Attribute) -> Operand:
        return self.storage.operand(ResolvedAttribute(self.schema, self.parent, sub))


def present(operand: Operand) -> ColumnElement[bool]:
    """`pr`: not null, and for strings not empty; never SQL NULL."""
    checks: list[ColumnElement[bool]] = []
    if operand.nullable:
        checks.append(operand.expr.is_not(None))
    if operand.attr.type in STRING_TYPES:
        checks.append(operand.expr != "")
    return and_(*checks) if checks else true()


def compare(
    operand: Operand, op: str, value: ComparisonValue, dialect: Dialect
) -> ColumnElement[bool]:
    """`operand op value` for a non-null value; FALSE (not NULL) when operand is null."""
    condition: ColumnElement[bool]
    if isinstance(value, str):
        condition = _compare_string(operand, op, value, dialect)
    elif isinstance(value, bool):
        condition = operand.expr == value
    elif isinstance(value, datetime):
        right: Any = func.julianday(value.isoformat()) if operand.julian else value
        condition = _ORDER[op](operand.expr, right)
    else:
        condition = _ORDER[op](operand.expr, literal(float(value)))  # type: ignore[arg-type]
    if not operand.nullable:
        return condition
    return and_(operand.expr.is_not(None), condition)


def _compare_string(operand: Operand, op: str, value: str, dialect: Dialect) -> ColumnElement[bool]:
    left: SQLColumnExpression[Any] = operand.expr
    if not operand.case_exact and not operand.normalized:
        left = func.lower(left)
    if op == "eq" or op in ORDER_OPS:
        right = _literal(operand, value)
        if op in ORDER_OPS and dialect == "postgresql":
            left = left.collate("C")
        return _ORDER[op](left, right)
    if value == "":
        return true()
    if dialect == "sqlite" and operand.case_exact:
        return left.op("GLOB", is_comparison=True)(glob_pattern(value, op))
    return left.like(_literal(operand, like_pattern(value, op)), escape=LIKE_ESCAPE)


def _literal(operand: Operand, value: str) -> Any:
    """The right-hand side: as is, lowered in Python (norm columns) or lower() in SQL."""
    if operand.case_exact:
        return literal(value, String)
    if operand.normalized:
        return literal(value.lower(), String)
    return func.lower(literal(value, String))


def like_pattern(value: str, op: str) -> str:
    """LIKE pattern for co/sw/ew with `\\`, `%` and `_` escaped (ESCAPE '\\')."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return _wrap(escaped, op, "%")


def glob_pattern(value: str, op: str) -> str:
    """SQLite GLOB pattern (case-sensitive) for co/sw/ew with `*`, `?`, `[` escaped."""
    escaped = "".join(f"[{char}]" if char in "*?[" else char for char in value)
    return _wrap(escaped, op, "*")


def _wrap(escaped: str, op: str, wildcard: str) -> str:
    if op == "sw":
        return escaped + wildcard
    if op == "ew":
        return wildcard + escaped
    return wildcard + escaped + wildcard
