"""Layers: pure (ast, parser, semantics, match) and store (sql, storage, sort, keyed). SCIM
filters (RFC 7644 §3.4.2.2): parsing, SQL compilation, sorting, in-memory matching.

parse_filter(text) -> Filter                      # InvalidFilter on any bad input
parse_patch_path(text) -> PatchPath               # InvalidPath on any bad input
parse_attr_path(text) -> AttrPath                 # sortBy / attributes; InvalidFilter
compile_filter(flt, resource, *, dialect_name) -> ColumnElement[bool]
compile_sort(sort_by, sort_order, resource, *, dialect_name) -> list[ORDER BY clause]
matches(flt, element, attr) -> bool               # PATCH value-path filters
"""

from __future__ import annotations

from scim.filter.ast import (
    And,
    AttrPath,
    Compare,
    CompareOp,
    CompValue,
    Filter,
    Not,
    Or,
    PatchPath,
    Present,
    ValuePath,
    parse_datetime,
)
from scim.filter.match import matches
from scim.filter.parser import (
    MAX_DEPTH,
    MAX_FILTER_LENGTH,
    MAX_TERMS,
    parse_attr_path,
    parse_filter,
    parse_patch_path,
)
from scim.filter.sort import compile_sort
from scim.filter.sql import compile_filter

__all__ = [
    "MAX_DEPTH",
    "MAX_FILTER_LENGTH",
    "MAX_TERMS",
    "And",
    "AttrPath",
    "CompValue",
    "Compare",
    "CompareOp",
    "Filter",
    "Not",
    "Or",
    "PatchPath",
    "Present",
    "ValuePath",
    "compile_filter",
    "compile_sort",
    "matches",
    "parse_attr_path",
    "parse_datetime",
    "parse_filter",
    "parse_patch_path",
]
