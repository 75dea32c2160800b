"""Layer: store. The lookups IdPs send before every create, as statements built once.

Okta asks `userName eq "…"` before creating a user, Entra `externalId eq "…"` or
`userName eq "…"`, and both `displayName eq "…"` before creating a group. Each is one
equality on an indexed column of the resource's own table. Compiling such a filter
through the general compiler (`scim.filter.sql`) builds a fresh SQLAlchemy expression per
request, and that construction costs more than the indexed probe it describes; here the
statement is built once per shape and only the value is bound.

`keyed_lookup` recognises exactly that shape and says which column and which value to
bind; anything else (another operator, a JSON-held or multi-valued attribute, a
non-string value, `and`/`or`/`not`) is None and takes the general path. The answer is
the same either way: `tests/integration/test_filter_sql.py` runs both paths.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Column

from scim.errors import ScimError
from scim.filter.ast import Compare, Filter
from scim.filter.semantics import resolve_filter_path
from scim.filter.storage import Dialect, Storage
from scim.schemas import ResourceType


@dataclass(frozen=True)
class KeyedLookup:
    """`column = value`, with `value` already normalized as the column holds it."""

    column: str  # the column's name on the resource's table
    value: str


def keyed_lookup(flt: Filter, resource: ResourceType, dialect: Dialect) -> KeyedLookup | None:
    """The column and value when `flt` is `<string attribute with a column> eq "<text>"`
    and the column compares by plain equality (caseExact, or a lowercased `*_norm`)."""
    if not isinstance(flt, Compare) or flt.op != "eq" or not isinstance(flt.value, str):
        return None
    try:
        resolved = resolve_filter_path(resource, flt.path)
    except ScimError:
        return None  # the general path raises the right error
    leaf = resolved.leaf
    if resolved.attr.multi_valued or resolved.is_extension or leaf.type != "string":
        return None
    storage = Storage(resource, dialect)
    try:
        operand = storage.operand(resolved)
    except ScimError:
        return None
    column = getattr(operand.expr, "expression", operand.expr)  # ORM attribute → Column
    if not isinstance(column, Column) or column.table is not storage.table.__table__:
        return None
    if operand.case_exact:
        return KeyedLookup(column.name, flt.value)
    if operand.normalized:
        return KeyedLookup(column.name, flt.value.lower())
    return None  # caseExact=false on a raw column needs lower() on both sides
