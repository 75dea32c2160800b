"""Layer: pure. PATCH engine (RFC 7644 §3.5.2): pure, no database, all-or-nothing.

`apply_patch` works on a deep copy of the stored document and returns the new document
plus, for Groups, membership *deltas* (members never live in the document: a group may
have 50k of them, and the storage layer applies the deltas with set operations).

Semantics (RFC section in brackets; deviations are marked as such):

- op names are case-insensitive (Entra: `Add`, `Replace`, `Remove`); so are the keys
  `op`/`path`/`value`. Unknown op → 400 invalidSyntax. add/replace without `value`
  → 400 invalidValue [§3.5.2.1 "MUST contain a value"].
- remove without `path` → 400 noTarget [§3.5.2.2].
- add/replace without `path`: `value` is an object whose keys are attribute names in
  any case, dotted (`name.givenName`), URN-qualified (`urn:…:User:employeeNumber`) or a
  schema URN holding a nested object; each key is applied as if it were the path
  (`schemas`, at top level or inside such an extension object, is ignored).
  ReadOnly attributes inside such a value are ignored, as for PUT [§3.5.1] — except
  `id` when it differs from the resource id (`resource_id=`), which is 400 mutability
  (Okta's group rename sends `{"id": …, "displayName": …}`).
- an explicit `path` to a readOnly attribute or sub-attribute → 400 mutability; to an
  immutable attribute that already has a value → 400 mutability [§3.5.2]. Unknown
  attribute, unknown sub-attribute (also inside a value filter), a value filter on a
  single-valued attribute → 400 invalidPath [§3.12].
- `password` (writeOnly) is discarded; `password_present` tells the caller.
- values are coerced like POST/PUT bodies (`scim.normalize`): `"False"` → false, bare
  manager id → `{"value": id}`, `null`/`""` → clear.
- add on a single-valued attribute replaces it; on a complex attribute it merges
  sub-attributes; replace of a complex attribute also merges ("sub-attributes that are
  not specified … are left unchanged", §3.5.2.3); a sub-attribute given as null/"" is
  cleared.
- `{}` merges nothing: for a complex attribute (`name`, `manager`), a matched value of a
  filter, or a whole extension it changes nothing, and never clears (RFC 7643 §2.5:
  only null and [] mean unassigned). For a simple attribute or sub-attribute it is no
  value of that type → 400 invalidValue; so is replace of a whole multi-valued
  attribute (Group `members` too) with `{}` (ambiguous: `[]`/null clear); add of `{}`
  to one adds nothing.
- add on a multi-valued attribute appends; an element equal to an existing one (same
  `value` per caseExact, and same `type` when both have one; whole-object equality for
  attributes without `value`) is merged into it instead of duplicated [§3.5.2.1 "no
  changes SHOULD be made"]. add of null/[] to a multi-valued attribute changes nothing.
- replace of a multi-valued attribute without filter replaces all values [§3.5.2.3].
- filtered add/replace (`emails[type eq "work"]`, `…].value`) changes every matching
  element; without a sub-attribute the value is merged into each (replace as add:
  §3.5.2.3 for complex values; a match is never deleted by a write).
  When nothing matches: replace → 400 noTarget [§3.5.2.3], EXCEPT when the filter is
  `eq` clauses joined by `and`: then a new element is created from those clauses plus
  the value (Entra replaces `emails[type eq "work"].value` for users without a work
  email). add behaves the same way. A null/"" value with no match is a no-op.
- remove: single-valued → unassigned; multi-valued without filter → all values
  removed [§3.5.2.2]; with a filter → the matching values (or only their
  sub-attribute: `emails[primary eq true].value` leaves `{"type", "primary"}`);
  a filter matching nothing → 400 noTarget (§3.12: "the specified path … contains a
  filter that yields no match"). Remove with `path` naming a multi-valued attribute
  AND a `value` list (Entra/OneLogin style) removes exactly the listed values and
  never all; an explicit `"value": null`/`""` there is ambiguous → 400 invalidValue;
  `[]` removes nothing.
- removing a required attribute, or leaving it unassigned by any op → 400 mutability
  [§3.5.2.2 last paragraph].
- a value of a multi-valued attribute may lack `value` (as in a POST body); one left
  with no sub-attribute at all by a write or remove is dropped.
- `primary`: at most one true per multi-valued attribute; an op that sets primary on
  one value sets it to false on the others [§3.5.2 "automatically set primary to
  false"]; one op setting it on two values → 400 invalidValue.

Group `members` (never applied to the document):

- add `members` (path, or no-path value key) → `members_add`;
- replace `members` → `members_replace` (the complete new list; null/[] → empty);
- remove `members[value eq "a" or value eq "b"]` → `members_remove` (`or` is a union,
  `and` an intersection, as a filter on one element means); filters on anything but
  `value eq` → 400 invalidFilter ("filter comparison combination not supported",
  §3.12); sub-attribute paths (`members.display`, `members[…].value`) and filtered
  add/replace → 400 invalidPath;
- remove `members` with a `value` list → `members_remove` (only those, never all);
- remove `members` without `value` → `members_remove_all`.

Deltas compose in operation order into a canonical form the storage applies as: if
`members_replace` is not None, membership becomes exactly that list; otherwise if
`members_remove_all`, delete all, then insert `members_add`; otherwise delete
`members_remove`, then insert `members_add`. `members_add` and `members_remove` are
disjoint, and both are empty when `members_replace` is set.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal

from scim.errors import (
    InvalidFilter,
    InvalidPath,
    InvalidSyntax,
    InvalidValue,
    MutabilityError,
    NoTarget,
    ScimError,
)
from scim.filter.ast import And, Compare, CompValue, Filter, Not, Or, PatchPath, Present
from scim.filter.match import matches
from scim.filter.parser import parse_patch_path
from scim.normalize import (
    JsonDict,
    check_one_primary,
    check_required,
    ci_get,
    coerce_members,
    coerce_single,
    coerce_value,
    is_empty,
    is_extension_schemas_key,
    resolve_name,
    split_name,
)
from scim.schemas import CORE_GROUP, PATCH_OP, Attribute, ResourceType, resolve

OpName = Literal["add", "remove", "replace"]
_OPS: tuple[OpName, ...] = ("add", "remove", "replace")


@dataclass(frozen=True)
class PatchResult:
    """The outcome of a PATCH request.

    `document` is a new dict (the input is never modified); `changed` says whether it
    differs from the input (no-op detection: no version bump, no change row). Member
    deltas are described in the module docstring.
    """

    document: JsonDict
    changed: bool
    members_add: list[str] = field(default_factory=list)
    members_remove: list[str] = field(default_factory=list)
    members_remove_all: bool = False
    members_replace: list[str] | None = None
    password_present: bool = False

    @property
    def members_changed(self) -> bool:
        """True when the request asked for any membership change (the storage layer
        still decides whether membership actually changed)."""
        return bool(
            self.members_add
            or self.members_remove
            or self.members_remove_all
            or self.members_replace is not None
        )


@dataclass
class _Members:
    """Membership deltas folded in operation order (see module docstring)."""

    add: dict[str, None] = field(default_factory=dict)
    remove: dict[str, None] = field(default_factory=dict)
    remove_all: bool = False
    replace: dict[str, None] | None = None

    def add_ids(self, ids: list[str]) -> None:
        for member in ids:
            if self.replace is not None:
                self.replace[member] = None
            else:
                self.remove.pop(member, None)
                self.add[member] = None

    def remove_ids(self, ids: list[str]) -> None:
        for member in ids:
            if self.replace is not None:
                self.replace.pop(member, None)
                continue
            self.add.pop(member, None)
            if not self.remove_all:
                self.remove[member] = None

    def clear(self) -> None:
        self.replace = None
        self.remove_all = True
        self.add.clear()
        self.remove.clear()

    def set(self, ids: list[str]) -> None:
        self.replace = dict.fromkeys(ids)
        self.remove_all = False
        self.add.clear()
        self.remove.clear()


@dataclass(frozen=True)
class _Target:
    """A resolved PATCH target: top-level attribute, optional filter and sub-attribute."""

    schema: str
    attr: Attribute
    is_extension: bool
    label: str
    value_filter: Filter | None = None
    sub: Attribute | None = None


@dataclass
class _State:
    resource: ResourceType
    resource_id: str | None
    doc: JsonDict
    members: _Members = field(default_factory=_Members)
    password_present: bool = False

    def container(self, target: _Target) -> JsonDict:
        if not target.is_extension:
            return self.doc
        ext = self.doc.get(target.schema)
        if not isinstance(ext, dict):
            ext = {}
            self.doc[target.schema] = ext
        return ext

    def is_members(self, target: _Target) -> bool:
        return self.resource.schema.id == CORE_GROUP and target.attr.name == "members"


# --- request shape --------------------------------------------------------------------


def parse_patch_request(body: object) -> list[JsonDict]:
    """Validate a PatchOp body (RFC 7644 §3.5.2) and return its `Operations`.

    A missing `schemas` is tolerated; a present one must name the PatchOp URN.
    `Operations` must be a non-empty list of objects (400 invalidSyntax otherwise).
    """
    if not isinstance(body, dict):
        raise InvalidSyntax("the PATCH body must be a JSON object")
    has_schemas, schemas = ci_get(body, "schemas")
    if has_schemas and (
        not isinstance(schemas, list)
        or PATCH_OP.lower() not in {s.lower() for s in schemas if isinstance(s, str)}
    ):
        raise InvalidSyntax(f"'schemas' must be [\"{PATCH_OP}\"]")
    _, operations = ci_get(body, "Operations")
    return _check_operations(operations)


def _check_operations(operations: object) -> list[JsonDict]:
    if not isinstance(operations, list) or not operations:
        raise InvalidSyntax("'Operations' must be a non-empty list")
    for op in operations:
        if not isinstance(op, dict):
            raise InvalidSyntax("each operation must be a JSON object")
    return operations


def _op_name(op: JsonDict) -> OpName:
    _, name = ci_get(op, "op")
    if isinstance(name, str):
        low = name.strip().lower()
        for known in _OPS:
            if low == known:
                return known
    raise InvalidSyntax(f"'op' must be add, remove or replace, not {name!r}")


# --- entry point ----------------------------------------------------------------------


def apply_patch(
    document: JsonDict,
    operations: list[JsonDict] | JsonDict,
    resource: ResourceType,
    *,
    resource_id: str | None = None,
) -> PatchResult:
    """Apply PATCH `operations` to `document`; all-or-nothing, the input is not touched.

    `operations` is the `Operations` list, or the whole PatchOp body (validated with
    `parse_patch_request`). `resource_id`, when given, lets a no-path value carry the
    resource's own `id` (Okta) while refusing a different one.
    """
    if isinstance(operations, dict):
        ops = parse_patch_request(operations)
    else:
        ops = _check_operations(operations)
    state = _State(resource, resource_id, copy.deepcopy(document))
    enforce_required = _complete(document, resource)
    for index, op in enumerate(ops, start=1):
        try:
            _apply_operation(state, op)
            _drop_empty_extensions(state.doc, resource)
            if enforce_required:
                # RFC 7644 §3.5.2.2: a required attribute left unassigned → mutability.
                check_required(state.doc, resource, MutabilityError)
        except ScimError as err:
            err.detail = f"operation {index}: {err.detail}"
            err.args = (err.detail,)
            raise
    members = state.members
    return PatchResult(
        document=state.doc,
        changed=state.doc != document,
        members_add=list(members.add),
        members_remove=list(members.remove),
        members_remove_all=members.remove_all,
        members_replace=None if members.replace is None else list(members.replace),
        password_present=state.password_present,
    )


def _apply_operation(state: _State, op: JsonDict) -> None:
    name = _op_name(op)
    _, path = ci_get(op, "path")
    has_value, value = ci_get(op, "value")
    if path is None or path == "":
        if name == "remove":
            raise NoTarget("remove requires a 'path'")
        if not has_value:
            raise InvalidValue(f"{name} requires a 'value'")
        _apply_no_path(state, name, value)
        return
    if not isinstance(path, str):
        raise InvalidPath("'path' must be a string")
    if name != "remove" and not has_value:
        raise InvalidValue(f"{name} requires a 'value'")
    whole = split_name(state.resource, path.strip())
    if whole is not None and whole.attr is None and whole.schema is not None:
        _apply_schema_path(state, name, whole.schema, value)
        return
    target = _target_from_path(state.resource, parse_patch_path(path), path)
    _apply_target(state, name, target, value, has_value, explicit=True)


def _complete(document: JsonDict, resource: ResourceType) -> bool:
    """Whether the stored document has its required attributes (it always should; a
    legacy document without them must not make every PATCH fail)."""
    try:
        check_required(document, resource, MutabilityError)
    except MutabilityError:
        return False
    return True


def _apply_schema_path(state: _State, op: OpName, schema: str, value: object) -> None:
    """`path` naming a whole schema (`urn:…:enterprise:2.0:User`): add/replace apply the
    object value as a no-path op would; remove clears the extension's attributes."""
    if op != "remove":
        _apply_no_path(state, op, {schema: value})
        return
    if schema == state.resource.schema.id:
        raise MutabilityError("the core schema cannot be removed")
    state.doc.pop(schema, None)


def _drop_empty_extensions(doc: JsonDict, resource: ResourceType) -> None:
    for ext in resource.extensions:
        if doc.get(ext.schema.id) == {}:
            del doc[ext.schema.id]


# --- targets --------------------------------------------------------------------------


def _target_from_path(resource: ResourceType, path: PatchPath, text: str) -> _Target:
    resolved = resolve(resource, path.attr.schema, path.attr.attr, None)
    if resolved is None:
        raise InvalidPath(f"unknown attribute in path '{text}'")
    attr = resolved.attr
    sub_name = path.sub_attr
    if path.attr.sub_attr is not None:
        if sub_name is not None:
            raise InvalidPath(f"invalid path '{text}'")
        sub_name = path.attr.sub_attr
    sub = None
    if sub_name is not None:
        sub = attr.sub(sub_name)
        if sub is None:
            raise InvalidPath(f"unknown sub-attribute in path '{text}'")
    if path.value_filter is not None:
        if not attr.multi_valued:
            raise InvalidPath(f"'{attr.name}' is single-valued: no value filter allowed")
        if not (resource.schema.id == CORE_GROUP and attr.name == "members"):
            _check_filter_attrs(path.value_filter, attr, text)
    return _Target(resolved.schema, attr, resolved.is_extension, text, path.value_filter, sub)


def _check_filter_attrs(flt: Filter, attr: Attribute, text: str) -> None:
    if isinstance(flt, And | Or):
        _check_filter_attrs(flt.left, attr, text)
        _check_filter_attrs(flt.right, attr, text)
    elif isinstance(flt, Not):
        _check_filter_attrs(flt.expr, attr, text)
    elif isinstance(flt, Compare | Present):
        if flt.path.sub_attr is not None or attr.sub(flt.path.attr) is None:
            raise InvalidPath(f"unknown attribute '{flt.path.attr}' in filter of '{text}'")
    else:
        raise InvalidPath(f"nested value filter in '{text}'")


def _apply_no_path(state: _State, op: OpName, value: object) -> None:
    if not isinstance(value, dict):
        raise InvalidValue(f"{op} without 'path' requires an object value")
    for key, item in value.items():
        if not isinstance(key, str):
            raise InvalidPath(f"invalid attribute name {key!r}")
        if key.lower() == "schemas":
            continue
        name = split_name(state.resource, key)
        if name is None:
            raise InvalidPath(f"unknown schema in '{key}'")
        if name.attr is not None:
            _apply_no_path_key(state, op, key, item)
            continue
        schema = name.schema or state.resource.schema.id
        if item == {}:
            continue  # merges nothing into the extension (it is not cleared)
        if is_empty(item):
            if schema != state.resource.schema.id:
                state.doc.pop(schema, None)  # the whole extension set to null: clear it
            continue
        if not isinstance(item, dict):
            raise InvalidValue(f"'{key}' must be an object")
        for inner, inner_value in item.items():
            if not isinstance(inner, str):
                raise InvalidPath(f"invalid attribute name {inner!r}")
            if is_extension_schemas_key(inner, inner_value):
                continue
            _apply_no_path_key(state, op, f"{schema}:{inner}", inner_value)


def _apply_no_path_key(state: _State, op: OpName, key: str, value: object) -> None:
    name = split_name(state.resource, key)
    resolved = None if name is None else resolve_name(state.resource, name)
    if resolved is None:
        raise InvalidPath(f"unknown attribute '{key}'")
    if resolved.attr.name == "id" and not resolved.is_extension:
        if state.resource_id is not None and value != state.resource_id:
            raise MutabilityError("'id' is readOnly and differs from the resource id")
        return
    target = _Target(resolved.schema, resolved.attr, resolved.is_extension, key, None, resolved.sub)
    _apply_target(state, op, target, value, True, explicit=False)


def _apply_target(
    state: _State, op: OpName, target: _Target, value: object, has_value: bool, *, explicit: bool
) -> None:
    attr, sub = target.attr, target.sub
    if state.is_members(target):
        _apply_members(state, op, target, value, has_value)
        return
    if attr.mutability == "writeOnly" or (sub is not None and sub.mutability == "writeOnly"):
        state.password_present = state.password_present or (op != "remove" and not is_empty(value))
        return
    if attr.mutability == "readOnly" or (sub is not None and sub.mutability == "readOnly"):
        if explicit:
            raise MutabilityError(f"'{target.label}' is readOnly")
        return
    if op != "remove":
        leaf = sub if sub is not None else attr
        if target.value_filter is None or sub is not None:
            _refuse_empty_object(leaf, value, target.label)
    container = state.container(target)
    has_value_now = not is_empty(container.get(attr.name))
    if attr.mutability == "immutable" and has_value_now and (op != "add" or not attr.multi_valued):
        raise MutabilityError(f"'{target.label}' is immutable")
    if op == "remove":
        _remove(container, target, value, has_value)
    else:
        _write(container, target, value, merge=op == "add")


# --- add / replace --------------------------------------------------------------------


def _write(container: JsonDict, target: _Target, value: object, *, merge: bool) -> None:
    attr = target.attr
    if not attr.multi_valued:
        if target.sub is not None:
            _write_sub_of_single(container, target, value)
        elif attr.type == "complex":
            _set(container, attr.name, _merge_complex(container.get(attr.name), attr, value))
        else:
            _set(container, attr.name, coerce_value(attr, value, target.label))
    elif target.value_filter is not None:
        _write_filtered(container, target, value)
    elif target.sub is not None:
        _write_sub_all(container, target, value)
    elif merge:
        _add_elements(container, target, value)
    elif value == {}:
        raise InvalidValue(
            f"replace '{target.label}' with {{}} is ambiguous: send [] or null to remove all "
            "values, or a filter to change some"
        )
    else:
        _set(container, attr.name, coerce_value(attr, value, target.label))


def _set(container: JsonDict, name: str, value: object) -> None:
    if is_empty(value):
        container.pop(name, None)
    else:
        container[name] = value


def _merge_complex(existing: object, attr: Attribute, value: object) -> JsonDict | None:
    """Merge a complex value into `existing`: given sub-attributes replace, null/"" clear,
    others stay (RFC 7644 §3.5.2.1, §3.5.2.3)."""
    if is_empty(value) and value != {}:
        return None
    if not isinstance(value, dict):
        value = coerce_single(attr, value, attr.name)  # bare manager id, or a type error
        assert isinstance(value, dict)
    out: JsonDict = dict(existing) if isinstance(existing, dict) else {}
    for key, raw in value.items():
        sub = attr.sub(key) if isinstance(key, str) else None
        if sub is None:
            raise InvalidValue(f"'{attr.name}' has no sub-attribute '{key}'")
        if sub.mutability == "readOnly":
            continue
        label = f"{attr.name}.{sub.name}"
        _refuse_empty_object(sub, raw, label)
        _set(out, sub.name, coerce_single(sub, raw, label))
    return out or None


def _refuse_empty_object(attr: Attribute, value: object, label: str) -> None:
    """`{}` merges nothing into a complex value, but is no value of a simple attribute:
    400 rather than the silent clear `is_empty` would make of it (RFC 7643 §2.5: only
    null and [] mean unassigned)."""
    if value == {} and attr.type != "complex":
        raise InvalidValue(f"'{label}' must be a {attr.type}, not {{}}")


def _write_sub_of_single(container: JsonDict, target: _Target, value: object) -> None:
    assert target.sub is not None
    existing = container.get(target.attr.name)
    out: JsonDict = dict(existing) if isinstance(existing, dict) else {}
    _set(out, target.sub.name, coerce_single(target.sub, value, target.label))
    _set(container, target.attr.name, out)


def _elements(container: JsonDict, attr: Attribute) -> list[Any]:
    current = container.get(attr.name)
    return list(current) if isinstance(current, list) else []


def _add_elements(container: JsonDict, target: _Target, value: object) -> None:
    attr = target.attr
    new = coerce_value(attr, value, target.label)
    if new is None:
        return
    elements = _elements(container, attr)
    written: list[Any] = []
    for element in new:
        same = next((e for e in elements if _same_element(attr, e, element)), None)
        if same is None:
            elements.append(element)
            written.append(element)
        elif isinstance(same, dict) and isinstance(element, dict):
            _merge_same(attr, same, element)
            written.append(same)
    _settle_primary(attr, elements, written, target.label)
    _set(container, attr.name, elements)


def _merge_same(attr: Attribute, existing: JsonDict, new: JsonDict) -> None:
    """Merge a re-added value into the existing one; sub-values that are equal per
    caseExact keep their stored spelling (re-adding is not a change)."""
    for key, item in new.items():
        sub = attr.sub(key)
        if key in existing and sub is not None and _scalar_eq(sub, existing[key], item):
            continue
        existing[key] = item


def _write_filtered(container: JsonDict, target: _Target, value: object) -> None:
    attr, flt = target.attr, target.value_filter
    assert flt is not None
    elements = _elements(container, attr)
    matched = [e for e in elements if isinstance(e, dict) and matches(flt, e, attr)]
    if not matched:
        created = _element_from_filter(target, value)
        if created is None:
            if is_empty(value):
                return
            raise NoTarget(f"'{target.label}' matches no value")
        elements.append(created)
        _settle_primary(attr, elements, [created], target.label)
        _set(container, attr.name, elements)
        return
    written: list[Any] = []
    result: list[Any] = []
    for element in elements:
        if not any(element is m for m in matched):
            result.append(element)
            continue
        updated = _update_element(element, target, value)
        if updated:
            result.append(updated)
            written.append(updated)
    _settle_primary(attr, result, written, target.label)
    _set(container, attr.name, result)


def _update_element(element: JsonDict, target: _Target, value: object) -> JsonDict:
    """One matched element after add/replace (empty when nothing is left of it).

    Without a sub-attribute the value is merged into the element, for replace as for
    add: RFC 7644 §3.5.2.3 replaces the matching values, and for a complex value that
    means "sub-attributes that are not specified … are left unchanged" (what
    scim2-server and the other libraries do). An element whose `value` becomes
    unassigned is kept, as a POST body may hold one (RFC 7644 §3.5.2.2).
    """
    if target.sub is not None:
        updated = dict(element)
        _set(updated, target.sub.name, coerce_single(target.sub, value, target.label))
        return updated
    return _merge_complex(element, target.attr, value) or {}


def _element_from_filter(target: _Target, value: object) -> JsonDict | None:
    """The Entra case: `emails[type eq "work"].value` with no work email creates one."""
    if is_empty(value) or target.value_filter is None:
        return None
    clauses = _eq_clauses(target.value_filter)
    if clauses is None:
        return None
    raw: JsonDict = dict(clauses)
    if target.sub is not None:
        raw[target.sub.name] = value
    elif isinstance(value, dict):
        raw.update(value)
    else:
        raise InvalidValue(f"'{target.label}' requires an object value")
    created = coerce_single(target.attr, raw, target.label)
    return created if isinstance(created, dict) and created else None


def _eq_clauses(flt: Filter) -> dict[str, CompValue] | None:
    """`a eq x and b eq y` → {a: x, b: y}; None for any other filter shape."""
    if isinstance(flt, Compare):
        if flt.op != "eq" or flt.value is None or flt.path.sub_attr is not None:
            return None
        return {flt.path.attr: flt.value}
    if isinstance(flt, And):
        left, right = _eq_clauses(flt.left), _eq_clauses(flt.right)
        if left is None or right is None:
            return None
        return {**left, **right}
    return None


def _write_sub_all(container: JsonDict, target: _Target, value: object) -> None:
    """`emails.display` without filter: the sub-attribute of every value."""
    attr, sub = target.attr, target.sub
    assert sub is not None
    coerced = coerce_single(sub, value, target.label)
    elements = _elements(container, attr)
    if not elements and coerced is not None:
        elements = [{sub.name: coerced}]
    result: list[Any] = []
    for element in elements:
        updated = dict(element) if isinstance(element, dict) else {}
        _set(updated, sub.name, coerced)
        if updated:  # an element left with no sub-attribute at all is no value
            result.append(updated)
    _settle_primary(attr, result, result, target.label)
    _set(container, attr.name, result)


def _settle_primary(attr: Attribute, elements: list[Any], written: list[Any], label: str) -> None:
    """Keep at most one `primary: true`: a value written by this op wins (RFC 7644 §3.5.2)."""
    if attr.sub("primary") is None:
        return
    fresh = {id(e): e for e in written if isinstance(e, dict) and e.get("primary") is True}
    check_one_primary(list(fresh.values()), label)
    keep = next(iter(fresh.values()), None)
    if keep is None:
        keep = next((e for e in elements if isinstance(e, dict) and e.get("primary") is True), None)
    for element in elements:
        if element is not keep and isinstance(element, dict) and element.get("primary") is True:
            element["primary"] = False


def _same_element(attr: Attribute, a: object, b: object) -> bool:
    """Whether new value `b` denotes existing value `a` (for de-duplication and
    remove-by-value)."""
    if not isinstance(a, dict) or not isinstance(b, dict):
        return _scalar_eq(attr, a, b)
    value_sub = attr.sub("value")
    if value_sub is None or "value" not in b:
        return a == b
    if not _scalar_eq(value_sub, a.get("value"), b["value"]):
        return False
    type_a, type_b = a.get("type"), b.get("type")
    if type_a is None or type_b is None:
        return True
    return str(type_a).lower() == str(type_b).lower()


def _scalar_eq(attr: Attribute, a: object, b: object) -> bool:
    if isinstance(a, str) and isinstance(b, str) and not attr.case_exact:
        return a.lower() == b.lower()
    return a == b


# --- remove ---------------------------------------------------------------------------


def _remove(container: JsonDict, target: _Target, value: object, has_value: bool) -> None:
    attr = target.attr
    if attr.required and target.sub is None and target.value_filter is None:
        raise MutabilityError(f"'{target.label}' is required and cannot be removed")
    if not attr.multi_valued:
        if target.sub is None:
            container.pop(attr.name, None)
        else:
            _write_sub_of_single(container, target, None)
        return
    elements = _elements(container, attr)
    if target.value_filter is not None:
        result = _remove_filtered(elements, target)
    elif target.sub is not None:
        result = [_without(e, target.sub.name) for e in elements]
        result = [e for e in result if e]  # an element left empty is no value
    elif has_value:
        result = _remove_listed(elements, target, value)
    else:
        result = []
    _set(container, attr.name, result)


def _remove_filtered(elements: list[Any], target: _Target) -> list[Any]:
    attr, flt = target.attr, target.value_filter
    assert flt is not None
    matched = [e for e in elements if isinstance(e, dict) and matches(flt, e, attr)]
    if not matched:
        raise NoTarget(f"'{target.label}' matches no value")
    result: list[Any] = []
    for element in elements:
        if not any(element is m for m in matched):
            result.append(element)
        elif target.sub is not None:
            kept = _without(element, target.sub.name)
            if kept:  # only that sub-attribute is unassigned (§3.5.2.2)
                result.append(kept)
    return result


def _without(element: object, key: str) -> JsonDict:
    if not isinstance(element, dict):
        return {}
    return {k: v for k, v in element.items() if k != key}


def _remove_listed(elements: list[Any], target: _Target, value: object) -> list[Any]:
    """remove with `path` = multi-valued attribute and a `value` list: exactly those."""
    if value is None or value == "":
        raise InvalidValue(f"remove '{target.label}' with a null value is ambiguous")
    items = value if isinstance(value, list) else [value]
    listed = [coerce_single(target.attr, item, target.label) for item in items]
    gone = [item for item in listed if item is not None]
    return [e for e in elements if not any(_same_element(target.attr, e, g) for g in gone)]


# --- Group members --------------------------------------------------------------------


def _apply_members(
    state: _State, op: OpName, target: _Target, value: object, has_value: bool
) -> None:
    if target.sub is not None:
        raise InvalidPath(f"'{target.label}': member sub-attributes cannot be patched")
    if target.value_filter is not None:
        if op != "remove":
            raise InvalidPath(f"'{target.label}': a members filter is only allowed in remove")
        state.members.remove_ids(_member_filter_ids(target.value_filter))
        return
    if op == "add":
        state.members.add_ids(_member_ids(value))
    elif op == "replace":
        if value == {}:
            raise InvalidValue(
                "replace 'members' with {} is ambiguous: send [] or null to remove all members"
            )
        state.members.set(_member_ids(value))
    elif not has_value:
        state.members.clear()
    elif value is None or value == "":
        raise InvalidValue("remove 'members' with a null value is ambiguous")
    else:
        state.members.remove_ids(_member_ids(value))


def _member_ids(value: object) -> list[str]:
    return [ref.value for ref in coerce_members(value)]


def _member_filter_ids(flt: Filter) -> list[str]:
    """The member ids a `members[...]` filter selects: `value eq` clauses only."""
    if isinstance(flt, Compare):
        if (
            flt.op == "eq"
            and flt.path.schema is None
            and flt.path.sub_attr is None
            and flt.path.attr.lower() == "value"
            and isinstance(flt.value, str)
        ):
            return [flt.value]
        raise InvalidFilter("members filters support only 'value eq \"id\"' clauses")
    if isinstance(flt, Or):
        return list(dict.fromkeys([*_member_filter_ids(flt.left), *_member_filter_ids(flt.right)]))
    if isinstance(flt, And):
        right = set(_member_filter_ids(flt.right))
        return [m for m in _member_filter_ids(flt.left) if m in right]
    raise InvalidFilter("members filters support only 'value eq \"id\"' clauses with and/or")
