"""Layer: store. Custom roles as stored (name, model, JSON definition) <-> ``models.access`` roles.

The stored ``definition`` is the role's body without id and name:
v2 ``{"workspace_grants": [...], "resource_grants": [...]}``, legacy
``{"statements": [...]}``. Parsing and validation are ``models.access``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.access.catalogue import validate_custom_role
from models.access.errors import ValidationError
from models.access.roles import Role, parse_legacy_role, parse_v2_role

ROLE_MODELS = ("v2", "legacy")


def build_custom_role(role_id: str, name: str, model: str, definition: Mapping[str, Any]) -> Role:
    """Parse and validate a custom role; raises ``models.access`` ValidationError
    whose ``field`` is a path inside the role body (e.g. ``resource_grants[0].grants[1]``)."""
    if model == "v2":
        role: Role = parse_v2_role({"id": role_id, "name": name, **definition})
    elif model == "legacy":
        extra = set(definition) - {"statements"}
        if extra:
            raise ValidationError(sorted(extra)[0], "unknown field")
        role = parse_legacy_role(role_id, name, {"statements": definition.get("statements")})
    else:
        raise ValidationError("model", f"must be one of {', '.join(ROLE_MODELS)}")
    validate_custom_role(role)
    return role
