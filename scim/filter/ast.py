"""Layer: pure. Filter and PATCH-path syntax trees (RFC 7644 §3.4.2.2, §3.5.2).

Produced by `scim.filter.parser`; consumed by the SQL compiler (`scim.filter.sql`) and
the in-memory matcher used by PATCH value-path filters (`scim.filter.match`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

CompareOp = Literal["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]
# JSON literal values of a comparison; datetimes stay strings here and are interpreted
# by the consumer according to the attribute's declared type.
CompValue = str | bool | int | float | None


@dataclass(frozen=True)
class AttrPath:
    """`[schemaURN:]attr[.subAttr]`, names as written (resolution is case-insensitive)."""

    schema: str | None
    attr: str
    sub_attr: str | None = None


@dataclass(frozen=True)
class Compare:
    path: AttrPath
    op: CompareOp
    value: CompValue


@dataclass(frozen=True)
class Present:
    path: AttrPath


@dataclass(frozen=True)
class And:
    left: Filter
    right: Filter


@dataclass(frozen=True)
class Or:
    left: Filter
    right: Filter


@dataclass(frozen=True)
class Not:
    expr: Filter


@dataclass(frozen=True)
class ValuePath:
    """`attr[filter]`: some value of multi-valued complex `attr` matches `filter`.

    Paths inside `filter` are relative to the element (their `attr` is the sub-attribute
    name, `sub_attr` is None).
    """

    path: AttrPath
    filter: Filter


Filter = Compare | Present | And | Or | Not | ValuePath


@dataclass(frozen=True)
class PatchPath:
    """A PATCH `path`: `attr[.sub]`, or `attr[valueFilter][.sub]`."""

    attr: AttrPath
    value_filter: Filter | None = None
    sub_attr: str | None = None


def parse_datetime(text: str) -> datetime | None:
    """Parse an RFC 3339 / xsd:dateTime string; None when it is not one."""
    candidate = text.strip()
    if candidate.endswith(("Z", "z")):
        candidate = candidate[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(candidate)
    except ValueError:
        return None
