"""Layer: pure. Input tolerance and validation for POST/PUT bodies (RFC 7643 §2, RFC 7644 §3.3,
§3.5.1).

Turns what identity providers actually send into the canonical *document*: core
attributes at top level under their schema names, extension attributes nested under
their URN, `id`/`meta`/`schemas`/User `groups`/Group `members` left out.

Tolerated input (each a real IdP habit):

- attribute and sub-attribute names in any case (Entra: `UserName`, `Active`);
- extension attributes nested under the URN key *or* flat as `urn:…:User:employeeNumber`
  (and `urn:…:User:manager.value`), core attributes as `urn:…:core:2.0:User:userName`;
- dotted keys for sub-attributes (`name.givenName`);
- booleans as strings, any case (Entra: `"True"`, `"False"`);
- a single-valued complex attribute given as a bare scalar (Entra: `manager: "id"`
  becomes `{"value": "id"}`);
- a multi-valued attribute given as one object instead of a list (wrapped);
- `null` and `""` mean "absent" (the attribute is cleared / not set);
- readOnly attributes (`id`, `meta`, `groups`, `manager.displayName`, …) are ignored, as
  RFC 7644 §3.5.1 requires for PUT (Okta sends them back);
- `password` (writeOnly) is discarded; `password_present` reports that it was sent;
- a missing `schemas` attribute is accepted (the endpoint already says what it is);
  a `schemas` list inside an extension object (scim2-models sends one) is ignored.

Rejected:

- `schemas` not a list of strings → 400 invalidSyntax; naming an unknown schema or
  lacking the core schema → 400 invalidValue ("not compatible with the resource
  schema", RFC 7644 §3.12);
- unknown attributes → 400 invalidSyntax (body does not conform to the schema); unknown
  sub-attributes and wrongly typed values → 400 invalidValue naming the attribute;
- a missing required attribute (`userName`, Group `displayName`) → 400 invalidValue;
- more than one `primary: true` in a multi-valued attribute → 400 invalidValue
  (RFC 7643 §2.4: "MUST appear no more than once"; we do not guess which one was meant);
- Group members whose `type` is not `User` → 400 invalidValue (no nested groups).

The helpers for value coercion and attribute-name splitting are shared with
`scim.patch` and `scim.projection`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from scim.errors import InvalidSyntax, InvalidValue, MutabilityError
from scim.filter.ast import parse_datetime
from scim.schemas import (
    CORE_GROUP,
    Attribute,
    ResolvedAttribute,
    ResourceType,
    resolve,
)

Mode = Literal["create", "replace"]
JsonDict = dict[str, Any]

MEMBER_KEYS = ("value", "$ref", "display", "type")


@dataclass(frozen=True)
class MemberRef:
    """One Group member from a request body: the member id and its declared type."""

    value: str
    type: str | None = None


@dataclass(frozen=True)
class NormalizedResource:
    """A validated POST/PUT body.

    `members` is None when the body has no `members` attribute (or the resource is not
    a Group): the caller must then leave stored membership alone rather than clear it
    (RFC 7644 §3.5.1 lets the server keep omitted attributes; clearing 50k members
    because a client left them out is not a risk worth taking). An explicit `[]` or
    `null` gives an empty list: clear all members.
    """

    document: JsonDict
    members: list[MemberRef] | None
    password_present: bool


@dataclass(frozen=True)
class AttrName:
    """An attribute name as written by a client, split but not yet resolved.

    `schema` is the canonical URN when the name was URN-qualified with a schema of the
    resource type, None for a bare name. `attr` is None when the name is the schema URN
    itself (the whole extension object).
    """

    schema: str | None
    attr: str | None
    sub: str | None = None


def split_name(resource: ResourceType, name: str) -> AttrName | None:
    """Split `[urn:]attr[.sub]` or a bare schema URN; None for an unknown schema URN."""
    low = name.lower()
    for schema_id in sorted(resource.schema_ids, key=len, reverse=True):
        sid = schema_id.lower()
        if low == sid:
            return AttrName(schema_id, None)
        if low.startswith(sid + ":"):
            attr, sub = _split_dot(name[len(sid) + 1 :])
            return AttrName(schema_id, attr, sub)
    if low.startswith("urn:"):
        return None
    attr, sub = _split_dot(name)
    return AttrName(None, attr, sub)


def _split_dot(text: str) -> tuple[str, str | None]:
    attr, dot, sub = text.partition(".")
    return attr, (sub if dot else None)


def resolve_name(resource: ResourceType, name: AttrName) -> ResolvedAttribute | None:
    """Resolve a split name naming an attribute (not a whole schema)."""
    if name.attr is None or not name.attr:
        return None
    return resolve(resource, name.schema, name.attr, name.sub)


def ci_get(mapping: JsonDict, key: str) -> tuple[bool, Any]:
    """(present, value) for `key` looked up case-insensitively (exact match first)."""
    if key in mapping:
        return True, mapping[key]
    low = key.lower()
    for k, v in mapping.items():
        if isinstance(k, str) and k.lower() == low:
            return True, v
    return False, None


def is_empty(value: object) -> bool:
    """`null`, `""`, `[]` and `{}` all mean "no value" (RFC 7643 §2.5: unassigned)."""
    return value is None or value in ("", [], {})


# --- value coercion -------------------------------------------------------------------


def coerce_value(attr: Attribute, value: object, label: str) -> Any:
    """Validate and coerce a complete value of `attr`; None means "clear".

    Multi-valued attributes give a non-empty list (a lone object is wrapped) in which at
    most one element has `primary: true`.
    """
    if is_empty(value):
        return None
    if not attr.multi_valued:
        return coerce_single(attr, value, label)
    items = value if isinstance(value, list) else [value]
    out: list[Any] = []
    for item in items:
        coerced = coerce_single(attr, item, label)
        if coerced is not None:
            out.append(coerced)
    check_one_primary(out, label)
    return out or None


def check_one_primary(elements: list[Any], label: str) -> None:
    primaries = sum(1 for e in elements if isinstance(e, dict) and e.get("primary") is True)
    if primaries > 1:
        raise InvalidValue(f"'{label}': at most one value may have primary true")


def coerce_single(attr: Attribute, value: object, label: str) -> Any:
    """One value of `attr` (one element when multi-valued); None means "clear"."""
    if is_empty(value):
        return None
    if attr.type == "complex":
        return coerce_complex(attr, value, label)
    return coerce_scalar(attr, value, label)


def coerce_complex(attr: Attribute, value: object, label: str) -> JsonDict | None:
    """A complex value: known sub-attributes coerced, readOnly ones and empties dropped."""
    if not isinstance(value, dict):
        value = _bare_to_complex(attr, value, label)
    out: JsonDict = {}
    for key, raw in value.items():
        sub = attr.sub(key) if isinstance(key, str) else None
        if sub is None:
            raise InvalidValue(f"'{label}' has no sub-attribute '{key}'")
        if sub.mutability == "readOnly":
            continue
        coerced = coerce_single(sub, raw, f"{label}.{sub.name}")
        if coerced is None:
            out.pop(sub.name, None)
        else:
            out[sub.name] = coerced
    return out or None


def _bare_to_complex(attr: Attribute, value: object, label: str) -> JsonDict:
    """Entra sends `manager` as a bare id: a scalar for a single-valued complex attribute
    with a `value` sub-attribute means `{"value": scalar}`."""
    if not attr.multi_valued and attr.sub("value") is not None and isinstance(value, str):
        return {"value": value}
    raise InvalidValue(f"'{label}' must be an object")


def coerce_scalar(attr: Attribute, value: object, label: str) -> Any:
    """A simple value checked against the attribute type (RFC 7643 §2.3)."""
    kind = attr.type
    if kind == "boolean":
        return _coerce_bool(value, label)
    if kind == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise InvalidValue(f"'{label}' must be an integer")
    if kind == "decimal":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        raise InvalidValue(f"'{label}' must be a number")
    if not isinstance(value, str):
        raise InvalidValue(f"'{label}' must be a string ({kind})")
    if kind == "dateTime" and parse_datetime(value) is None:
        raise InvalidValue(f"'{label}' must be an xsd:dateTime")
    return value


def _coerce_bool(value: object, label: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("true", "false"):
            return low == "true"
    raise InvalidValue(f"'{label}' must be a boolean")


def coerce_members(value: object, label: str = "members") -> list[MemberRef]:
    """Group `members` values: each an object with a non-empty string `value` and a
    `type` that is absent or `User`; duplicates dropped, order kept."""
    if is_empty(value):
        return []
    items = value if isinstance(value, list) else [value]
    seen: dict[str, MemberRef] = {}
    for item in items:
        if item is None:
            continue
        ref = _member_ref(item, label)
        seen.setdefault(ref.value, ref)
    return list(seen.values())


def _member_ref(item: object, label: str) -> MemberRef:
    if not isinstance(item, dict):
        raise InvalidValue(f"'{label}' values must be objects with a 'value'")
    for key in item:
        if not isinstance(key, str) or key.lower() not in MEMBER_KEYS:
            raise InvalidValue(f"'{label}' has no sub-attribute '{key}'")
    _, member_id = ci_get(item, "value")
    if not isinstance(member_id, str) or not member_id:
        raise InvalidValue(f"'{label}.value' must be a non-empty string")
    _, kind = ci_get(item, "type")
    if kind is None or kind == "":
        return MemberRef(member_id)
    if not isinstance(kind, str) or kind.lower() != "user":
        raise InvalidValue(f"'{label}': only User members are supported (no nested groups)")
    return MemberRef(member_id, "User")


def is_extension_schemas_key(key: str, value: object) -> bool:
    """A `schemas` list inside an extension object (`{"urn:…:enterprise:2.0:User":
    {"schemas": [...], …}}`): libraries that model extensions as objects of their own
    (scim2-models) serialize it there. It is no attribute of the extension schema and
    carries nothing the enclosing URN key does not, so it is ignored like the top-level
    `schemas` of a PATCH value; anything but a list of strings is still an error."""
    return (
        key.lower() == "schemas"
        and isinstance(value, list)
        and all(isinstance(s, str) for s in value)
    )


# --- POST / PUT -----------------------------------------------------------------------


def check_schemas(value: object, resource: ResourceType) -> None:
    """`schemas` of a POST/PUT body: absent is tolerated; otherwise it must list the core
    schema and only schemas of this resource type."""
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise InvalidSyntax("'schemas' must be a list of schema URNs")
    known = {s.lower() for s in resource.schema_ids}
    unknown = [s for s in value if s.lower() not in known]
    if unknown:
        raise InvalidValue(f"unknown schema for {resource.name}: {', '.join(unknown)}")
    if resource.schema.id.lower() not in {s.lower() for s in value}:
        raise InvalidValue(f"'schemas' must include {resource.schema.id}")


@dataclass
class _Builder:
    resource: ResourceType
    document: JsonDict
    members: list[MemberRef] | None = None
    password_present: bool = False

    def put(self, key: str, value: object) -> None:
        name = split_name(self.resource, key)
        if name is None:
            raise InvalidSyntax(f"unknown schema in attribute '{key}'")
        if name.attr is None:
            self.put_schema_object(name.schema or self.resource.schema.id, key, value)
            return
        resolved = resolve_name(self.resource, name)
        if resolved is None:
            raise InvalidSyntax(f"unknown attribute '{key}' for {self.resource.name}")
        self.put_resolved(resolved, value, key)

    def put_schema_object(self, schema: str, key: str, value: object) -> None:
        if is_empty(value):
            return
        if not isinstance(value, dict):
            raise InvalidValue(f"'{key}' must be an object")
        for inner, inner_value in value.items():
            if not isinstance(inner, str):
                raise InvalidSyntax(f"unknown attribute '{inner}' in '{key}'")
            if is_extension_schemas_key(inner, inner_value):
                continue
            self.put(f"{schema}:{inner}", inner_value)

    def put_resolved(self, resolved: ResolvedAttribute, value: object, key: str) -> None:
        attr = resolved.attr
        if self.resource.schema.id == CORE_GROUP and attr.name == "members":
            if resolved.sub is not None:
                raise InvalidSyntax(f"'{key}': members must be given as a list")
            self.members = coerce_members(value)
            return
        if attr.mutability == "writeOnly" or (
            resolved.sub is not None and resolved.sub.mutability == "writeOnly"
        ):
            self.password_present = self.password_present or not is_empty(value)
            return
        if attr.mutability == "readOnly" or (
            resolved.sub is not None and resolved.sub.mutability == "readOnly"
        ):
            return
        container = self.container(resolved)
        if resolved.sub is None:
            self.put_whole(container, attr, value)
        else:
            self.put_sub(container, attr, resolved.sub, value, key)

    def container(self, resolved: ResolvedAttribute) -> JsonDict:
        if not resolved.is_extension:
            return self.document
        ext = self.document.setdefault(resolved.schema, {})
        assert isinstance(ext, dict)
        return ext

    @staticmethod
    def put_whole(container: JsonDict, attr: Attribute, value: object) -> None:
        coerced = coerce_value(attr, value, attr.name)
        existing = container.get(attr.name)
        if coerced is None:
            container.pop(attr.name, None)
        elif isinstance(existing, dict) and isinstance(coerced, dict):
            existing.update(coerced)  # `name.givenName` came first, then `name`
        else:
            container[attr.name] = coerced

    @staticmethod
    def put_sub(
        container: JsonDict, attr: Attribute, sub: Attribute, value: object, key: str
    ) -> None:
        if attr.multi_valued:
            raise InvalidSyntax(f"'{key}': a multi-valued attribute must be given as a list")
        coerced = coerce_single(sub, value, f"{attr.name}.{sub.name}")
        existing = container.setdefault(attr.name, {})
        if coerced is None:
            existing.pop(sub.name, None)
            if not existing:
                container.pop(attr.name, None)
        else:
            existing[sub.name] = coerced


def normalize_resource(
    body: object,
    resource: ResourceType,
    *,
    mode: Mode,
    current: JsonDict | None = None,
) -> NormalizedResource:
    """Validate a POST (`mode="create"`) or PUT (`mode="replace"`) body.

    `current` is the stored document, used in replace mode to refuse changing an
    already-set immutable attribute (RFC 7644 §3.5.1 → 400 mutability).
    """
    if mode not in ("create", "replace"):
        raise ValueError(f"unknown mode {mode!r}")
    if not isinstance(body, dict):
        raise InvalidSyntax("the request body must be a JSON object")
    _, schemas = ci_get(body, "schemas")
    check_schemas(schemas, resource)
    builder = _Builder(resource, {})
    for key, value in body.items():
        if not isinstance(key, str):
            raise InvalidSyntax("attribute names must be strings")
        if key.lower() == "schemas":
            continue
        builder.put(key, value)
    document = {k: v for k, v in builder.document.items() if v != {}}
    check_required(document, resource, InvalidValue)
    if mode == "replace" and current is not None:
        _check_immutable(document, current, resource)
    members = builder.members if resource.schema.id == CORE_GROUP else None
    return NormalizedResource(document, members, builder.password_present)


def check_required(
    document: JsonDict, resource: ResourceType, error: type[InvalidValue | MutabilityError]
) -> None:
    """Every required attribute of the core schema and extensions must have a value."""
    for attr in resource.schema.attributes:
        if attr.required and is_empty(document.get(attr.name)):
            raise error(f"'{attr.name}' is required")
    for ext in resource.extensions:
        ext_doc = document.get(ext.schema.id)
        for attr in ext.schema.attributes:
            if not attr.required:
                continue
            missing = not isinstance(ext_doc, dict) or is_empty(ext_doc.get(attr.name))
            if missing and (ext.required or isinstance(ext_doc, dict)):
                raise error(f"'{ext.schema.id}:{attr.name}' is required")


def _check_immutable(document: JsonDict, current: JsonDict, resource: ResourceType) -> None:
    scopes: list[tuple[tuple[Attribute, ...], JsonDict, JsonDict]] = [
        (resource.schema.attributes, document, current)
    ]
    for ext in resource.extensions:
        new_ext = document.get(ext.schema.id)
        old_ext = current.get(ext.schema.id)
        scopes.append(
            (
                ext.schema.attributes,
                new_ext if isinstance(new_ext, dict) else {},
                old_ext if isinstance(old_ext, dict) else {},
            )
        )
    for attrs, new, old in scopes:
        for attr in attrs:
            if attr.mutability != "immutable" or is_empty(old.get(attr.name)):
                continue
            if new.get(attr.name) != old.get(attr.name):
                raise MutabilityError(f"'{attr.name}' is immutable")
