"""Layer: pure. SCIM schema definitions (RFC 7643 §4, §7, §8.7) as data.

One registry drives discovery (`/Schemas`, `/ResourceTypes`), filter compilation
(types, caseExact), PATCH (mutability), input normalisation (case-insensitive
attribute names) and projection (`returned`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

AttrType = Literal[
    "string", "boolean", "decimal", "integer", "dateTime", "reference", "complex", "binary"
]
Mutability = Literal["readOnly", "readWrite", "immutable", "writeOnly"]
Returned = Literal["always", "never", "default", "request"]
Uniqueness = Literal["none", "server", "global"]

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
SERVICE_PROVIDER_CONFIG = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"


@dataclass(frozen=True)
class Attribute:
    """One attribute definition (RFC 7643 §7)."""

    name: str
    type: AttrType = "string"
    multi_valued: bool = False
    required: bool = False
    case_exact: bool = False
    mutability: Mutability = "readWrite"
    returned: Returned = "default"
    uniqueness: Uniqueness = "none"
    sub_attributes: tuple[Attribute, ...] = ()
    canonical_values: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()
    description: str = ""

    def sub(self, name: str) -> Attribute | None:
        """Sub-attribute by case-insensitive name."""
        low = name.lower()
        for attr in self.sub_attributes:
            if attr.name.lower() == low:
                return attr
        return None

    def to_scim(self) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name,
            "type": self.type,
            "multiValued": self.multi_valued,
            "description": self.description or self.name,
            "required": self.required,
            "mutability": self.mutability,
            "returned": self.returned,
        }
        if self.type in ("string", "reference", "binary"):
            out["caseExact"] = self.case_exact
        if self.type in ("string",):
            out["uniqueness"] = self.uniqueness
        if self.canonical_values:
            out["canonicalValues"] = list(self.canonical_values)
        if self.reference_types:
            out["referenceTypes"] = list(self.reference_types)
        if self.sub_attributes:
            out["subAttributes"] = [a.to_scim() for a in self.sub_attributes]
        return out


@dataclass(frozen=True)
class Schema:
    id: str
    name: str
    description: str
    attributes: tuple[Attribute, ...]

    def attr(self, name: str) -> Attribute | None:
        """Top-level attribute by case-insensitive name."""
        low = name.lower()
        for attr in self.attributes:
            if attr.name.lower() == low:
                return attr
        return None

    def to_scim(self, base_url: str) -> dict[str, object]:
        return {
            "schemas": [SCHEMA],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": [a.to_scim() for a in self.attributes],
            "meta": {"resourceType": "Schema", "location": f"{base_url}/Schemas/{self.id}"},
        }


@dataclass(frozen=True)
class SchemaExtension:
    schema: Schema
    required: bool = False


@dataclass(frozen=True)
class ResourceType:
    id: str
    name: str
    endpoint: str
    description: str
    schema: Schema
    extensions: tuple[SchemaExtension, ...] = field(default=())

    @property
    def schema_ids(self) -> tuple[str, ...]:
        return (self.schema.id, *(e.schema.id for e in self.extensions))

    def extension(self, urn: str) -> Schema | None:
        low = urn.lower()
        for ext in self.extensions:
            if ext.schema.id.lower() == low:
                return ext.schema
        return None

    def to_scim(self, base_url: str) -> dict[str, object]:
        return {
            "schemas": [RESOURCE_TYPE],
            "id": self.id,
            "name": self.name,
            "endpoint": self.endpoint,
            "description": self.description,
            "schema": self.schema.id,
            "schemaExtensions": [
                {"schema": e.schema.id, "required": e.required} for e in self.extensions
            ],
            "meta": {
                "resourceType": "ResourceType",
                "location": f"{base_url}/ResourceTypes/{self.id}",
            },
        }


def _s(name: str, **kw: object) -> Attribute:
    return Attribute(name, "string", **kw)  # type: ignore[arg-type]


def _multi(name: str, *subs: Attribute, canonical_types: tuple[str, ...] = ()) -> Attribute:
    """A standard multi-valued complex attribute (value/display/type/primary)."""
    base = subs or (_s("value"),)
    return Attribute(
        name,
        "complex",
        multi_valued=True,
        sub_attributes=(
            *base,
            _s("display"),
            _s("type", canonical_values=canonical_types),
            Attribute("primary", "boolean"),
        ),
    )


ID_ATTR = Attribute(
    "id",
    "string",
    case_exact=True,
    mutability="readOnly",
    returned="always",
    uniqueness="server",
    description="Unique identifier for the resource, assigned by the service provider.",
)
EXTERNAL_ID_ATTR = Attribute(
    "externalId",
    "string",
    case_exact=True,
    description="Identifier of the resource as defined by the provisioning client.",
)
META_ATTR = Attribute(
    "meta",
    "complex",
    mutability="readOnly",
    sub_attributes=(
        Attribute("resourceType", "string", case_exact=True, mutability="readOnly"),
        Attribute("created", "dateTime", mutability="readOnly"),
        Attribute("lastModified", "dateTime", mutability="readOnly"),
        Attribute(
            "location",
            "reference",
            case_exact=True,
            mutability="readOnly",
            reference_types=("uri",),
        ),
        Attribute("version", "string", case_exact=True, mutability="readOnly"),
    ),
)
# Common attributes (RFC 7643 §3.1) present on every resource; not part of any schema's
# attribute list in /Schemas, but valid in filters, sortBy and attributes parameters.
COMMON_ATTRIBUTES: tuple[Attribute, ...] = (ID_ATTR, EXTERNAL_ID_ATTR, META_ATTR)

USER_SCHEMA = Schema(
    id=CORE_USER,
    name="User",
    description="User Account",
    attributes=(
        Attribute(
            "userName",
            "string",
            required=True,
            uniqueness="server",
            description="Unique identifier for the User, used to authenticate; unique per "
            "organization, case-insensitively.",
        ),
        Attribute(
            "name",
            "complex",
            sub_attributes=(
                _s("formatted"),
                _s("familyName"),
                _s("givenName"),
                _s("middleName"),
                _s("honorificPrefix"),
                _s("honorificSuffix"),
            ),
        ),
        _s("displayName"),
        _s("nickName"),
        Attribute("profileUrl", "reference", reference_types=("external",)),
        _s("title"),
        _s("userType"),
        _s("preferredLanguage"),
        _s("locale"),
        _s("timezone"),
        Attribute("active", "boolean"),
        Attribute(
            "password",
            "string",
            mutability="writeOnly",
            returned="never",
            description="Accepted for compatibility and discarded: idsync never stores it.",
        ),
        _multi("emails", canonical_types=("work", "home", "other")),
        _multi("phoneNumbers", canonical_types=("work", "home", "mobile", "fax", "pager", "other")),
        _multi(
            "ims",
            canonical_types=("aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"),
        ),
        _multi(
            "photos",
            Attribute("value", "reference", reference_types=("external",)),
            canonical_types=("photo", "thumbnail"),
        ),
        Attribute(
            "addresses",
            "complex",
            multi_valued=True,
            sub_attributes=(
                _s("formatted"),
                _s("streetAddress"),
                _s("locality"),
                _s("region"),
                _s("postalCode"),
                _s("country"),
                _s("type", canonical_values=("work", "home", "other")),
                Attribute("primary", "boolean"),
            ),
        ),
        Attribute(
            "groups",
            "complex",
            multi_valued=True,
            mutability="readOnly",
            description="Groups the user belongs to; computed from Group.members, read-only.",
            sub_attributes=(
                Attribute("value", "string", case_exact=True, mutability="readOnly"),
                Attribute("$ref", "reference", mutability="readOnly", reference_types=("Group",)),
                Attribute("display", "string", mutability="readOnly"),
                Attribute("type", "string", mutability="readOnly", canonical_values=("direct",)),
            ),
        ),
        _multi("entitlements"),
        _multi("roles"),
        _multi("x509Certificates", Attribute("value", "binary")),
    ),
)

ENTERPRISE_USER_SCHEMA = Schema(
    id=ENTERPRISE_USER,
    name="EnterpriseUser",
    description="Enterprise User",
    attributes=(
        _s("employeeNumber"),
        _s("costCenter"),
        _s("organization"),
        _s("division"),
        _s("department"),
        Attribute(
            "manager",
            "complex",
            sub_attributes=(
                _s("value"),
                Attribute("$ref", "reference", reference_types=("User",)),
                Attribute("displayName", "string", mutability="readOnly"),
            ),
        ),
    ),
)

GROUP_SCHEMA = Schema(
    id=CORE_GROUP,
    name="Group",
    description="Group",
    attributes=(
        Attribute(
            "displayName",
            "string",
            required=True,
            uniqueness="server",
            description="Human-readable name; unique per organization, case-insensitively.",
        ),
        Attribute(
            "members",
            "complex",
            multi_valued=True,
            description="Members of the group (users only: nested groups are not supported).",
            sub_attributes=(
                Attribute("value", "string", case_exact=True, mutability="immutable"),
                Attribute("$ref", "reference", mutability="immutable", reference_types=("User",)),
                Attribute(
                    "display",
                    "string",
                    mutability="readOnly",
                    returned="request",
                    description="The member's displayName (or userName); returned only when "
                    "requested (attributes=members.display), as members are often many.",
                ),
                Attribute("type", "string", mutability="immutable", canonical_values=("User",)),
            ),
        ),
    ),
)

USER_RESOURCE = ResourceType(
    id="User",
    name="User",
    endpoint="/Users",
    description="User Account",
    schema=USER_SCHEMA,
    extensions=(SchemaExtension(ENTERPRISE_USER_SCHEMA, required=False),),
)
GROUP_RESOURCE = ResourceType(
    id="Group", name="Group", endpoint="/Groups", description="Group", schema=GROUP_SCHEMA
)

RESOURCE_TYPES: tuple[ResourceType, ...] = (USER_RESOURCE, GROUP_RESOURCE)
SCHEMAS: tuple[Schema, ...] = (USER_SCHEMA, ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA)


@dataclass(frozen=True)
class ResolvedAttribute:
    """An attribute path resolved against a resource type.

    `schema` is the URN that owns the top-level attribute (core or extension); `attr` the
    top-level definition; `sub` the sub-attribute definition when the path names one.
    """

    schema: str
    attr: Attribute
    sub: Attribute | None = None

    @property
    def leaf(self) -> Attribute:
        return self.sub or self.attr

    @property
    def is_extension(self) -> bool:
        return self.schema not in (CORE_USER, CORE_GROUP)


def resolve(
    resource: ResourceType, schema_urn: str | None, name: str, sub: str | None
) -> ResolvedAttribute | None:
    """Resolve `[urn:]name[.sub]` case-insensitively; None when unknown.

    Common attributes (id, externalId, meta) resolve under the core schema.
    """
    candidates: list[Schema]
    if schema_urn is None or schema_urn.lower() == resource.schema.id.lower():
        candidates = [resource.schema]
    else:
        ext = resource.extension(schema_urn)
        if ext is None:
            return None
        candidates = [ext]
    for schema in candidates:
        attr = schema.attr(name)
        if attr is None and schema is resource.schema:
            low = name.lower()
            attr = next((a for a in COMMON_ATTRIBUTES if a.name.lower() == low), None)
        if attr is None:
            continue
        if sub is None:
            return ResolvedAttribute(schema.id, attr)
        sub_attr = attr.sub(sub)
        if sub_attr is None:
            return None
        return ResolvedAttribute(schema.id, attr, sub_attr)
    return None
