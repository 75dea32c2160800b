"""Layer: store. Where each SCIM attribute lives in the database, as SQL expressions.

Maps resolved attribute paths onto the `scim_users` / `scim_groups` tables: indexed
columns for the attributes that have one (userName → `user_name_norm`, externalId,
displayName, active, id, meta.*), JSON extraction from `attrs` for everything else,
array iteration (`json_each` / `jsonb_array_elements`) for multi-valued attributes, and
the `scim_group_members` table for `User.groups` and `Group.members`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from sqlalchemy import (
    JSON,
    ColumnElement,
    DateTime,
    Exists,
    String,
    case,
    cast,
    func,
    literal,
    literal_column,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import SQLColumnExpression
from sqlalchemy.sql.selectable import TableValuedAlias

from models.db.tables import Group, GroupMember, User
from scim.errors import InvalidFilter
from scim.filter.semantics import NUMBER_TYPES, STRING_TYPES, is_case_exact
from scim.schemas import CORE_GROUP, CORE_USER, Attribute, ResolvedAttribute, ResourceType

Dialect = Literal["sqlite", "postgresql"]
ScimTable = type[User] | type[Group]


def check_dialect(name: str) -> Dialect:
    if name == "sqlite":
        return "sqlite"
    if name == "postgresql":
        return "postgresql"
    raise ValueError(f"unsupported SQL dialect {name!r} (expected sqlite or postgresql)")


def table_for(resource: ResourceType) -> ScimTable:
    if resource.schema.id == CORE_USER:
        return User
    if resource.schema.id == CORE_GROUP:
        return Group
    raise ValueError(f"no table for resource type {resource.id!r}")


@dataclass(frozen=True)
class Operand:
    """One attribute value as an SQL expression of the attribute's type.

    `normalized`: the expression already holds lower(value) (the `*_norm` columns), so
    case-insensitive comparisons lower only the literal. `julian`: SQLite dateTime held
    in JSON, compared as julianday() numbers.
    """

    attr: Attribute
    expr: SQLColumnExpression[Any]
    case_exact: bool
    nullable: bool = True
    normalized: bool = False
    julian: bool = False


class Scope(Protocol):
    """Sub-attributes of one complex value (an array element, a membership row…)."""

    def operand(self, sub: Attribute) -> Operand: ...


class Collection(Protocol):
    """The values of a multi-valued attribute of the row being filtered."""

    def any(self, build: Callable[[Scope], ColumnElement[bool]]) -> ColumnElement[bool]: ...

    def nonempty(self) -> ColumnElement[bool]: ...

    def sort_value(self, sub: Attribute, key: Callable[[Operand], SQLColumnExpression[Any]]) -> Any:
        """Scalar subquery: `sub` of the primary value, else of the first value."""
        ...


def json_operand(json_expr: Any, attr: Attribute, case_exact: bool, dialect: Dialect) -> Operand:
    """`json_expr` is a JSON index expression (`attrs[...]`); extract it as `attr.type`."""
    if attr.type in STRING_TYPES:
        return Operand(attr, json_expr.as_string(), case_exact)
    if attr.type == "boolean":
        return Operand(attr, json_expr.as_boolean(), case_exact)
    if attr.type in NUMBER_TYPES:
        return Operand(attr, json_expr.as_float(), case_exact)
    if attr.type == "dateTime":
        text = json_expr.as_string()
        if dialect == "postgresql":
            return Operand(attr, cast(text, DateTime(timezone=True)), case_exact)
        return Operand(attr, func.julianday(text), case_exact, julian=True)
    raise InvalidFilter(f"'{attr.name}' is complex: compare one of its sub-attributes")


def json_keys(resolved: ResolvedAttribute) -> tuple[str, ...]:
    """Path of an attribute inside `attrs` (extension attributes nest under their URN)."""
    keys = [resolved.attr.name] if resolved.sub is None else [resolved.attr.name, resolved.sub.name]
    return (resolved.schema, *keys) if resolved.is_extension else tuple(keys)


def sqlite_json_path(keys: tuple[str, ...]) -> str:
    assert all('"' not in key for key in keys)
    return "$" + "".join(f'."{key}"' for key in keys)


def _index(document: Any, keys: tuple[str, ...]) -> Any:
    return document[keys[0]] if len(keys) == 1 else document[keys]


@dataclass(frozen=True)
class Storage:
    """Attribute → SQL mapping for one resource type on one dialect."""

    resource: ResourceType
    dialect: Dialect

    @property
    def table(self) -> ScimTable:
        return table_for(self.resource)

    def operand(self, resolved: ResolvedAttribute) -> Operand:
        """A single-valued simple attribute or a sub-attribute of a single-valued one."""
        column = None if resolved.is_extension else self._column(resolved)
        if column is not None:
            return column
        leaf = resolved.leaf
        document = self.table.attrs
        return json_operand(
            _index(document, json_keys(resolved)), leaf, is_case_exact(leaf), self.dialect
        )

    def collection(self, resolved: ResolvedAttribute) -> Collection:
        name = resolved.attr.name
        if not resolved.is_extension and name in ("groups", "members"):
            return MembershipCollection(self, resolved.attr)
        keys = (resolved.schema, name) if resolved.is_extension else (name,)
        return JsonCollection(self, resolved.attr, keys)

    def _column(self, resolved: ResolvedAttribute) -> Operand | None:
        attr, table = resolved.attr, self.table
        if attr.name == "meta":
            return None if resolved.sub is None else self._meta(resolved.sub)
        if attr.name == "id":
            return Operand(attr, table.id, True, nullable=False)
        if attr.name == "externalId":
            return Operand(attr, table.external_id, True)
        if table is User:
            return _user_column(attr)
        if attr.name == "displayName":
            return Operand(attr, Group.display_name_norm, False, nullable=False, normalized=True)
        return None

    def _meta(self, sub: Attribute) -> Operand:
        table = self.table
        if sub.name == "created":
            return Operand(sub, table.created_at, True, nullable=False)
        if sub.name == "lastModified":
            return Operand(sub, table.updated_at, True, nullable=False)
        if sub.name == "resourceType":
            return Operand(sub, literal(self.resource.name, String), True, nullable=False)
        if sub.name == "version":
            etag = literal('W/"', String) + cast(table.version, String) + literal('"', String)
            return Operand(sub, etag, True, nullable=False)
        raise InvalidFilter(f"'meta.{sub.name}' cannot be used in a filter")


def _user_column(attr: Attribute) -> Operand | None:
    if attr.name == "userName":
        return Operand(attr, User.user_name_norm, False, nullable=False, normalized=True)
    if attr.name == "displayName":
        return Operand(attr, User.display_name, False)
    if attr.name == "active":
        return Operand(attr, User.active, True, nullable=False)
    return None


@dataclass(frozen=True)
class _ElementScope:
    element: Any
    parent: Attribute
    dialect: Dialect

    def operand(self, sub: Attribute) -> Operand:
        return json_operand(
            self.element[sub.name], sub, is_case_exact(sub, self.parent), self.dialect
        )


@dataclass(frozen=True)
class JsonCollection:
    """A multi-valued attribute stored as a JSON array in `attrs`."""

    storage: Storage
    parent: Attribute
    keys: tuple[str, ...]

    def _elements(self) -> tuple[TableValuedAlias, _ElementScope, ColumnElement[bool] | None]:
        document = self.storage.table.attrs
        dialect = self.storage.dialect
        if dialect == "postgresql":
            array = _index(document, self.keys)
            safe = case(
                (func.jsonb_typeof(array) == "array", array), else_=cast(literal("[]"), JSONB)
            )
            elements = func.jsonb_array_elements(safe).table_valued(
                "value", with_ordinality="ordinality"
            )
            element = type_coerce(elements.c.value, JSONB)
            return elements, _ElementScope(element, self.parent, dialect), None
        path = sqlite_json_path(self.keys)
        elements = func.json_each(document, path).table_valued("value", "key")
        element = type_coerce(elements.c.value, JSON)
        is_array = func.json_type(document, path) == "array"
        return elements, _ElementScope(element, self.parent, dialect), is_array

    def _select(self, *columns: Any) -> tuple[Any, _ElementScope, TableValuedAlias]:
        elements, scope, is_array = self._elements()
        query = select(*columns).select_from(elements)
        if is_array is not None:
            query = query.where(is_array)
        return query, scope, elements

    def any(self, build: Callable[[Scope], ColumnElement[bool]]) -> ColumnElement[bool]:
        query, scope, _ = self._select(literal_column("1"))
        exists: Exists = query.where(build(scope)).exists()
        return exists

    def nonempty(self) -> ColumnElement[bool]:
        query, _, _ = self._select(literal_column("1"))
        exists: Exists = query.exists()
        return exists

    def sort_value(self, sub: Attribute, key: Callable[[Operand], SQLColumnExpression[Any]]) -> Any:
        elements, scope, is_array = self._elements()
        position = elements.c.ordinality if self.storage.dialect == "postgresql" else elements.c.key
        order: list[Any] = []
        primary = self.parent.sub("primary")
        if primary is not None and primary.type == "boolean":
            is_primary = scope.operand(primary).expr == True  # noqa: E712 - SQL expression
            order.append(case((is_primary, 0), else_=1))
        order.append(position)
        query = select(key(scope.operand(sub))).select_from(elements)
        if is_array is not None:
            query = query.where(is_array)
        return query.order_by(*order).limit(1).scalar_subquery()


class _MembershipScope:
    """A `scim_group_members` row seen from the user (`groups`) or the group (`members`)."""

    def __init__(self, storage: Storage, link: Any, parent: Attribute) -> None:
        self.storage = storage
        self.link = link
        self.parent = parent
        self.joined: Any = None

    @property
    def of_user(self) -> bool:
        return self.storage.table is User

    def other_id(self) -> ColumnElement[str]:
        column: ColumnElement[str] = self.link.group_id if self.of_user else self.link.user_id
        return column

    def own_id(self) -> ColumnElement[str]:
        column: ColumnElement[str] = self.link.user_id if self.of_user else self.link.group_id
        return column

    def operand(self, sub: Attribute) -> Operand:
        if sub.name == "value":
            return Operand(sub, self.other_id(), True, nullable=False)
        if sub.name == "type":
            kind = "direct" if self.of_user else "User"
            return Operand(sub, literal(kind, String), is_case_exact(sub), nullable=False)
        if sub.name == "display":
            return Operand(sub, self._display(), is_case_exact(sub), nullable=False)
        raise InvalidFilter(f"'{self.parent.name}.{sub.name}' cannot be used in a filter")

    def _display(self) -> SQLColumnExpression[str]:
        if self.of_user:
            group = aliased(Group)
            self.joined = group
            name: SQLColumnExpression[str] = group.display_name
            return name
        user = aliased(User)
        self.joined = user
        return func.coalesce(user.display_name, user.user_name)

    def select(self, *columns: Any, where: ColumnElement[bool] | None) -> Any:
        query = select(*columns).select_from(self.link)
        if self.joined is not None:
            query = query.join(self.joined, self.joined.id == self.other_id())
        query = query.where(self.own_id() == self.storage.table.id)
        return query if where is None else query.where(where)


@dataclass(frozen=True)
class MembershipCollection:
    """`User.groups` / `Group.members`: rows of `scim_group_members`."""

    storage: Storage
    parent: Attribute

    def _scope(self) -> _MembershipScope:
        return _MembershipScope(self.storage, aliased(GroupMember), self.parent)

    def any(self, build: Callable[[Scope], ColumnElement[bool]]) -> ColumnElement[bool]:
        scope = self._scope()
        condition = build(scope)
        exists: Exists = scope.select(literal_column("1"), where=condition).exists()
        return exists

    def nonempty(self) -> ColumnElement[bool]:
        exists: Exists = self._scope().select(literal_column("1"), where=None).exists()
        return exists

    def sort_value(self, sub: Attribute, key: Callable[[Operand], SQLColumnExpression[Any]]) -> Any:
        """Memberships have no order and no primary: the smallest value sorts."""
        scope = self._scope()
        value = key(scope.operand(sub))
        return scope.select(func.min(value), where=None).scalar_subquery()
