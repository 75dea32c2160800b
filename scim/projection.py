"""Layer: pure. Response projection: `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5, §3.9)
and the `returned` characteristic (RFC 7643 §2.4, §7).

Rules:

- names are `[urn:]attr[.sub]` or a bare schema URN, matched case-insensitively; a bare
  name unknown in the core schema is looked up in the extensions when exactly one of
  them defines it (RFC 7644 §3.10 "SHOULD" qualify). Unknown names are ignored.
- `returned: always` (`id`; `schemas` is always kept as well) survives both parameters;
  `never` (`password`) is always dropped; `request` only appears when named in
  `attributes`; `default` (everything else, including `userName` and `meta` per the
  RFC 7643 §8.7.1 schema representation) appears unless excluded, or — when
  `attributes` is given — only when named.
- `attributes=name.givenName` keeps only that sub-attribute (for multi-valued complex
  attributes, of each value; values left empty are dropped); naming an extension URN
  keeps the whole extension object.
- `excludedAttributes=name.givenName` drops that sub-attribute; an extension URN drops
  the whole extension object.
- The RFC calls the two parameters mutually exclusive; when both are given this
  applies both (attributes selects, then excludedAttributes removes) rather than fail.
- An extension key left empty is removed, and its URN is removed from `schemas`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from scim.normalize import JsonDict, split_name
from scim.schemas import Attribute, ResolvedAttribute, ResourceType, resolve

_Key = tuple[str, str]  # (schema URN, attribute name), canonical spelling
Inclusion = Literal["all", "subs", "none"]


@dataclass(frozen=True)
class _Selection:
    """Parsed `attributes` or `excludedAttributes` list."""

    schemas: frozenset[str] = frozenset()
    attrs: frozenset[_Key] = frozenset()
    subs: dict[_Key, frozenset[str]] = field(default_factory=dict)

    def names_attr(self, key: _Key) -> bool:
        return key in self.attrs or key[0] in self.schemas

    def subs_of(self, key: _Key) -> frozenset[str]:
        return self.subs.get(key, frozenset())


def _resolve_any(resource: ResourceType, text: str) -> ResolvedAttribute | str | None:
    """A resolved attribute, a schema URN (whole schema), or None (ignored)."""
    name = split_name(resource, text)
    if name is None:
        return None
    if name.attr is None:
        return name.schema
    found = resolve(resource, name.schema, name.attr, name.sub)
    if found is None and name.schema is None:
        hits = [
            hit
            for ext in resource.extensions
            if (hit := resolve(resource, ext.schema.id, name.attr, name.sub)) is not None
        ]
        found = hits[0] if len(hits) == 1 else None
    return found


def _selection(resource: ResourceType, names: list[str] | None) -> _Selection | None:
    if not names:
        return None
    schemas: set[str] = set()
    attrs: set[_Key] = set()
    subs: dict[_Key, set[str]] = {}
    for text in names:
        found = _resolve_any(resource, text.strip())
        if found is None:
            continue
        if isinstance(found, str):
            schemas.add(found)
            continue
        key = (found.schema, found.attr.name)
        if found.sub is None:
            attrs.add(key)
        else:
            subs.setdefault(key, set()).add(found.sub.name)
    return _Selection(
        frozenset(schemas), frozenset(attrs), {k: frozenset(v) for k, v in subs.items()}
    )


def _inclusion(
    key: _Key, attr: Attribute, inc: _Selection | None, exc: _Selection | None
) -> Inclusion:
    if attr.returned == "never":
        return "none"
    if attr.returned == "always":
        return "all"
    if inc is not None:
        if key in inc.attrs or (key[0] in inc.schemas and attr.returned != "request"):
            whole = True
        elif inc.subs_of(key):
            whole = False
        else:
            return "none"
    else:
        if attr.returned == "request":
            return "none"
        whole = True
    if exc is not None and exc.names_attr(key):
        return "none"
    return "all" if whole else "subs"


def _keep_sub(sub: Attribute, selected: frozenset[str] | None, excluded: frozenset[str]) -> bool:
    if sub.returned == "never":
        return False
    if sub.returned == "always":
        return True
    if selected is not None:
        return sub.name in selected
    return sub.returned != "request" and sub.name not in excluded


def _project_complex(
    attr: Attribute, value: JsonDict, selected: frozenset[str] | None, excluded: frozenset[str]
) -> JsonDict:
    out: JsonDict = {}
    for key, item in value.items():
        sub = attr.sub(key)
        if sub is None:
            if selected is None:
                out[key] = item
        elif _keep_sub(sub, selected, excluded):
            out[key] = item
    return out


def _project_value(
    attr: Attribute, value: Any, selected: frozenset[str] | None, excluded: frozenset[str]
) -> Any:
    if attr.type != "complex" or not attr.sub_attributes:
        return value
    if isinstance(value, dict):
        return _project_complex(attr, value, selected, excluded) or None
    if isinstance(value, list):
        items = [
            _project_complex(attr, v, selected, excluded) if isinstance(v, dict) else v
            for v in value
        ]
        return [v for v in items if v != {}] or None
    return value


def _project_attr(
    key: _Key, attr: Attribute, value: Any, inc: _Selection | None, exc: _Selection | None
) -> Any:
    """The projected value, or None to leave the attribute out."""
    inclusion = _inclusion(key, attr, inc, exc)
    if inclusion == "none":
        return None
    selected = inc.subs_of(key) if inclusion == "subs" and inc is not None else None
    excluded = exc.subs_of(key) if exc is not None else frozenset()
    return _project_value(attr, value, selected, excluded)


def _project_object(
    schema: str,
    lookup: ResourceType,
    source: JsonDict,
    inc: _Selection | None,
    exc: _Selection | None,
) -> JsonDict:
    out: JsonDict = {}
    for name, value in source.items():
        found = resolve(lookup, schema, name, None)
        if found is None:
            # Not in the schema: treat as a plain `returned: default` attribute.
            if inc is None and (exc is None or schema not in exc.schemas):
                out[name] = value
            continue
        projected = _project_attr((found.schema, found.attr.name), found.attr, value, inc, exc)
        if projected is not None:
            out[name] = projected
    return out


_HIDDEN_BY_DEFAULT: dict[str, frozenset[str] | None] = {}


def _hidden_by_default(resource: ResourceType) -> frozenset[str] | None:
    """Lower-cased names of the core attributes a response leaves out when neither
    parameter is given (`returned: never|request`, e.g. `password`), or None when such
    an attribute hides deeper (a sub-attribute, or in an extension) and only the full
    walk is right."""
    if resource.id in _HIDDEN_BY_DEFAULT:
        return _HIDDEN_BY_DEFAULT[resource.id]

    def hidden(attr: Attribute) -> bool:
        return attr.returned in ("never", "request")

    names: frozenset[str] | None = frozenset(
        a.name.lower() for a in resource.schema.attributes if hidden(a)
    )
    deeper = any(hidden(sub) for a in resource.schema.attributes for sub in a.sub_attributes)
    deeper = deeper or any(
        hidden(a) or any(hidden(sub) for sub in a.sub_attributes)
        for ext in resource.extensions
        for a in ext.schema.attributes
    )
    if deeper:
        names = None
    _HIDDEN_BY_DEFAULT[resource.id] = names
    return names


def _default_projection(resource_json: JsonDict, hidden: frozenset[str]) -> JsonDict:
    """`project` without `attributes`/`excludedAttributes`, for a resource whose only
    hidden attributes are top-level core ones: the rendered document minus those and
    minus empty values. A list page renders up to 1000 of these, so this skips the
    per-attribute schema walk, which has nothing to remove here."""
    out: JsonDict = {}
    for name, value in resource_json.items():
        if name == "schemas":
            out[name] = list(value) if isinstance(value, list) else value
        elif value is not None and value not in ([], {}) and name.lower() not in hidden:
            out[name] = value
    return out


def project(
    resource_json: JsonDict,
    resource: ResourceType,
    *,
    attributes: list[str] | None,
    excluded: list[str] | None,
) -> JsonDict:
    """Apply `attributes` / `excludedAttributes` and `returned` rules to a rendered
    resource (a new dict; the input is not modified)."""
    if not attributes and not excluded:
        hidden = _hidden_by_default(resource)
        if hidden is not None:
            return _default_projection(resource_json, hidden)
    inc = _selection(resource, attributes)
    exc = _selection(resource, excluded)
    core = resource.schema.id
    out: JsonDict = {}
    for name, value in resource_json.items():
        if name == "schemas":
            out[name] = list(value) if isinstance(value, list) else value
            continue
        ext = resource.extension(name)
        if ext is None:
            out.update(_project_object(core, resource, {name: value}, inc, exc))
            continue
        if ext.id in (exc.schemas if exc is not None else frozenset()):
            continue
        projected = (
            _project_object(ext.id, resource, value, inc, exc) if isinstance(value, dict) else {}
        )
        if projected:
            out[name] = projected
    schemas = out.get("schemas")
    if isinstance(schemas, list):
        present = {k.lower() for k in out}
        out["schemas"] = [
            s
            for s in schemas
            if not isinstance(s, str) or resource.extension(s) is None or s.lower() in present
        ]
    return out


def wants(
    attr_name: str,
    attributes: list[str] | None,
    excluded: list[str] | None,
    resource: ResourceType,
) -> bool:
    """Whether `attr_name` (e.g. `members`, `groups`) will be in the projected output,
    so the storage layer can skip loading it (e.g. `excludedAttributes=members`)."""
    found = _resolve_any(resource, attr_name)
    if not isinstance(found, ResolvedAttribute):
        return False
    key = (found.schema, found.attr.name)
    inc = _selection(resource, attributes)
    exc = _selection(resource, excluded)
    return _inclusion(key, found.attr, inc, exc) != "none"
