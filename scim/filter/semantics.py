"""Layer: pure. Filter semantics shared by the SQL compiler, the sorter and the in-memory matcher.

Attribute resolution, caseExact rules and the operator/value type rules live here so
that SQL filtering and PATCH value-path matching cannot drift apart.
"""

from __future__ import annotations

from datetime import UTC, datetime

from scim.errors import InvalidFilter
from scim.filter.ast import AttrPath, CompareOp, CompValue, parse_datetime
from scim.schemas import Attribute, ResolvedAttribute, ResourceType, resolve

STRING_TYPES = ("string", "reference", "binary")
NUMBER_TYPES = ("integer", "decimal")
ORDER_OPS = ("gt", "ge", "lt", "le")
SUBSTRING_OPS = ("co", "sw", "ew")
ALWAYS_CASE_EXACT = ("id", "externalid", "$ref")
ID_COLLECTIONS = ("groups", "members")
"""Multi-valued attributes whose `value` is a resource id (caseExact)."""

ComparisonValue = str | bool | int | float | datetime | None


def path_text(path: AttrPath) -> str:
    """The path as a client would write it (for error messages)."""
    text = path.attr if path.sub_attr is None else f"{path.attr}.{path.sub_attr}"
    return text if path.schema is None else f"{path.schema}:{text}"


def resolve_path(resource: ResourceType, path: AttrPath) -> ResolvedAttribute | None:
    """`scim.schemas.resolve`, plus unqualified names of extension attributes.

    RFC 7644 §3.10: clients SHOULD (not MUST) qualify extension attributes with their
    schema URN, so a bare name that is unknown in the core schema is looked up in the
    extensions when exactly one of them defines it.
    """
    found = resolve(resource, path.schema, path.attr, path.sub_attr)
    if found is not None or path.schema is not None:
        return found
    hits = [
        hit
        for ext in resource.extensions
        if (hit := resolve(resource, ext.schema.id, path.attr, path.sub_attr)) is not None
    ]
    return hits[0] if len(hits) == 1 else None


def resolve_filter_path(resource: ResourceType, path: AttrPath) -> ResolvedAttribute:
    """Resolve or raise InvalidFilter (RFC 7644 §3.4.2.2: unknown attribute)."""
    found = resolve_path(resource, path)
    if found is None:
        raise InvalidFilter(f"unknown attribute '{path_text(path)}' for {resource.name}")
    if found.leaf.returned == "never":
        raise InvalidFilter(f"attribute '{path_text(path)}' cannot be used in a filter")
    return found


def sub_attribute(parent: Attribute, path: AttrPath) -> Attribute:
    """The sub-attribute a value-filter path names (paths are relative to the element)."""
    if path.schema is not None or path.sub_attr is not None:
        raise InvalidFilter(
            f"inside '{parent.name}[...]' use sub-attribute names, not '{path_text(path)}'"
        )
    sub = parent.sub(path.attr)
    if sub is None:
        raise InvalidFilter(f"unknown sub-attribute '{path.attr}' of '{parent.name}'")
    return sub


def default_sub(attr: Attribute) -> Attribute:
    """`emails co "x"` compares `emails.value` (RFC 7644 §3.4.2.2, multi-valued attrs)."""
    value = attr.sub("value")
    if value is None:
        raise InvalidFilter(
            f"'{attr.name}' has no 'value' sub-attribute; name the sub-attribute to compare"
        )
    return value


def is_case_exact(attr: Attribute, parent: Attribute | None = None) -> bool:
    """caseExact per the schema, plus ids, externalId, `$ref`, binary, membership ids."""
    if attr.case_exact or attr.type == "binary" or attr.name.lower() in ALWAYS_CASE_EXACT:
        return True
    return parent is not None and parent.name.lower() in ID_COLLECTIONS and attr.name == "value"


def comparison_value(
    attr: Attribute, op: CompareOp, value: CompValue, where: str
) -> ComparisonValue:
    """Check that `op` and `value` suit `attr`; the value to compare with.

    Returns a str (string-like types), bool, int/float, a UTC-aware datetime, or None
    for the `null` literal (allowed with eq/ne only). Raises InvalidFilter otherwise.
    """
    if attr.type == "complex":
        raise InvalidFilter(f"'{where}' is complex: compare one of its sub-attributes")
    if value is None:
        if op not in ("eq", "ne"):
            raise InvalidFilter(f"'{where} {op} null': null can only be used with eq or ne")
        return None
    if attr.type in STRING_TYPES:
        return _string_value(attr, op, value, where)
    if attr.type == "boolean":
        return _boolean_value(op, value, where)
    if attr.type == "dateTime":
        return _datetime_value(op, value, where)
    return _number_value(op, value, where)


def _unsupported(op: str, kind: str, where: str) -> InvalidFilter:
    return InvalidFilter(f"operator '{op}' is not supported for {kind} attribute '{where}'")


def _string_value(attr: Attribute, op: CompareOp, value: CompValue, where: str) -> str:
    if attr.type == "binary" and op not in ("eq", "ne"):
        raise _unsupported(op, "binary", where)
    if not isinstance(value, str):
        raise InvalidFilter(f"'{where}' is a string attribute: compare it with a JSON string")
    return value


def _boolean_value(op: CompareOp, value: CompValue, where: str) -> bool:
    if op not in ("eq", "ne"):
        raise _unsupported(op, "boolean", where)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidFilter(f"'{where}' is a boolean attribute: compare it with true or false")


def _datetime_value(op: CompareOp, value: CompValue, where: str) -> datetime:
    if op in SUBSTRING_OPS:
        raise _unsupported(op, "dateTime", where)
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None:
        raise InvalidFilter(f"'{where}' is a dateTime attribute: {value!r} is not a dateTime")
    try:
        return as_utc(parsed)
    except OverflowError:
        raise InvalidFilter(f"'{where}': dateTime {value!r} is out of range") from None


def _number_value(op: CompareOp, value: CompValue, where: str) -> int | float:
    if op in SUBSTRING_OPS:
        raise _unsupported(op, "numeric", where)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidFilter(f"'{where}' is a numeric attribute: compare it with a number")
    return value


def as_utc(value: datetime) -> datetime:
    """Aware UTC datetime (naive values are taken to be UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
