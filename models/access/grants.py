"""Layer: pure. The grant vocabulary of both permission models.

v2 grants live in a *scope* (workspace, source, destination, parent model or an
Events resource type); each has a short code used by the compiled cache form.
Legacy permissions are (resource type, action) pairs.
"""

from __future__ import annotations

from typing import Final, Literal

from .errors import UnknownGrantError

PermissionsModel = Literal["v2", "legacy"]

# --- v2 scopes --------------------------------------------------------------

WORKSPACE: Final = "workspace"
SOURCE: Final = "source"
DESTINATION: Final = "destination"
PARENT_MODEL: Final = "parent_model"
EVENT_SOURCE: Final = "event_source"
EVENT_STREAMING_DESTINATION: Final = "event_streaming_destination"
EVENT_WAREHOUSE_DESTINATION: Final = "event_warehouse_destination"
EVENT_FUNCTION: Final = "event_function"
EVENT_CONTRACT: Final = "event_contract"

RESOURCE_SCOPES: Final[tuple[str, ...]] = (
    SOURCE,
    DESTINATION,
    PARENT_MODEL,
    EVENT_SOURCE,
    EVENT_STREAMING_DESTINATION,
    EVENT_WAREHOUSE_DESTINATION,
    EVENT_FUNCTION,
    EVENT_CONTRACT,
)

# (scope, grant name) -> short code. Codes are unique and never contain ":" or "~".
V2_GRANT_CODES: Final[dict[tuple[str, str], str]] = {
    (WORKSPACE, "manage_workspace"): "mw",
    (WORKSPACE, "create_sources"): "csr",
    (WORKSPACE, "create_destinations"): "cde",
    (WORKSPACE, "access_agents"): "aag",
    (WORKSPACE, "configure_agents"): "cag",
    (WORKSPACE, "create_event_sources"): "ces",
    (WORKSPACE, "create_event_warehouse_destinations"): "cew",
    (WORKSPACE, "create_event_streaming_destinations"): "cet",
    (WORKSPACE, "create_event_contracts"): "cec",
    (WORKSPACE, "create_event_functions"): "cef",
    (SOURCE, "view_data"): "vd",
    (SOURCE, "configure_models_syncs"): "cms",
    (SOURCE, "draft_models_syncs"): "dms",
    (SOURCE, "approve_models_syncs"): "ams",
    (SOURCE, "configure_schema"): "csc",
    (SOURCE, "manage_source"): "ms",
    (DESTINATION, "trigger_syncs"): "ts",
    (DESTINATION, "configure_syncs"): "cs",
    (DESTINATION, "draft_syncs"): "ds",
    (DESTINATION, "approve_syncs"): "as",
    (DESTINATION, "manage_destination"): "md",
    (PARENT_MODEL, "view_parent_model_data"): "vp",
    (PARENT_MODEL, "configure_audiences_syncs"): "ca",
    (PARENT_MODEL, "configure_journeys"): "cj",
    (PARENT_MODEL, "publish_journeys"): "pj",
    (PARENT_MODEL, "trigger_audience_syncs"): "ta",
    (PARENT_MODEL, "approve_audience_syncs"): "aa",
    (EVENT_SOURCE, "edit"): "ese",
    (EVENT_SOURCE, "sync"): "ess",
    (EVENT_SOURCE, "access_data"): "esa",
    (EVENT_STREAMING_DESTINATION, "edit"): "ete",
    (EVENT_STREAMING_DESTINATION, "sync"): "ets",
    (EVENT_WAREHOUSE_DESTINATION, "edit"): "ewe",
    (EVENT_WAREHOUSE_DESTINATION, "sync"): "ews",
    (EVENT_WAREHOUSE_DESTINATION, "run"): "ewr",
    (EVENT_FUNCTION, "edit"): "efe",
    (EVENT_CONTRACT, "edit"): "ece",
}
V2_GRANTS_BY_CODE: Final[dict[str, tuple[str, str]]] = {c: k for k, c in V2_GRANT_CODES.items()}
V2_GRANT_NAMES: Final[frozenset[str]] = frozenset(n for _, n in V2_GRANT_CODES)
V2_SCOPES: Final[frozenset[str]] = frozenset(s for s, _ in V2_GRANT_CODES)

# Only the pre-built admin role holds manage_workspace; custom roles may not grant it.
ADMIN_ONLY_GRANTS: Final[frozenset[tuple[str, str]]] = frozenset({(WORKSPACE, "manage_workspace")})

# Pseudo grant: reading metadata needs any role in the workspace (viewer included).
READ: Final = "read"

# Approval-flow split: configure grant -> (draft grant, approve grant), same scope.
APPROVAL_SPLIT: Final[dict[tuple[str, str], tuple[str, str]]] = {
    (SOURCE, "configure_models_syncs"): ("draft_models_syncs", "approve_models_syncs"),
    (DESTINATION, "configure_syncs"): ("draft_syncs", "approve_syncs"),
}
SPLIT_HALVES: Final[dict[tuple[str, str], tuple[str, str]]] = {
    (scope, half): (scope, configure)
    for (scope, configure), halves in APPROVAL_SPLIT.items()
    for half in halves
}

# Grants that may carry a subset limit (parent model scope only).
SUBSET_LIMITABLE: Final[frozenset[str]] = frozenset(
    {"view_parent_model_data", "configure_audiences_syncs"}
)

# v2 resource-ref types that map to a grant scope. An audience is checked on its parent model.
REF_TYPE_TO_SCOPE: Final[dict[str, str]] = {
    **{s: s for s in RESOURCE_SCOPES},
    "audience": PARENT_MODEL,
}


def v2_scope_for(grant: str, ref_type: str | None) -> str:
    """The scope of ``grant`` asked about a resource of ``ref_type`` (None: workspace).

    Raises UnknownGrantError when the pair is not in the vocabulary.
    """
    if ref_type is None:
        scope = WORKSPACE
    else:
        maybe = REF_TYPE_TO_SCOPE.get(ref_type)
        if maybe is None:
            raise UnknownGrantError("resource.type", f"unknown v2 resource type {ref_type!r}")
        scope = maybe
    if (scope, grant) not in V2_GRANT_CODES:
        raise UnknownGrantError("grant", f"{grant!r} is not a {scope} grant")
    return scope


def v2_code(scope: str, grant: str) -> str:
    """Short code of a v2 grant; raises UnknownGrantError."""
    code = V2_GRANT_CODES.get((scope, grant))
    if code is None:
        raise UnknownGrantError("grant", f"{grant!r} is not a {scope} grant")
    return code


# --- legacy vocabulary ------------------------------------------------------

LEGACY_RESOURCE_TYPES: Final[tuple[str, ...]] = (
    "source",
    "model",
    "destination",
    "sync",
    "audience",
    "account",
)
# "publish" is idsync's name for "edits take effect without approval" (see
# decision legacy.full_star_is_draft); the others are the contract's actions.
LEGACY_ACTIONS: Final[tuple[str, ...]] = (
    "create",
    "read",
    "update",
    "delete",
    "preview",
    "start",
    "enable",
    "debugger",
    "testrow",
    "approve",
    "publish",
)
_CRUD: Final = ("create", "read", "update", "delete")
LEGACY_APPLICABLE: Final[dict[str, frozenset[str]]] = {
    "source": frozenset((*_CRUD, "preview")),
    "model": frozenset((*_CRUD, "preview", "approve", "publish")),
    "destination": frozenset(_CRUD),
    "sync": frozenset((*_CRUD, "start", "enable", "debugger", "testrow", "approve", "publish")),
    "audience": frozenset(_CRUD),
    "account": frozenset(_CRUD),
}
LEGACY_TYPE_CODES: Final[dict[str, str]] = {
    "source": "s",
    "model": "m",
    "destination": "d",
    "sync": "y",
    "audience": "a",
    "account": "c",
}
LEGACY_ACTION_CODES: Final[dict[str, str]] = {
    "create": "c",
    "read": "r",
    "update": "u",
    "delete": "d",
    "preview": "p",
    "start": "s",
    "enable": "e",
    "debugger": "g",
    "testrow": "t",
    "approve": "a",
    "publish": "P",
}
# Legacy resource types that live in a Space.
SPACE_SCOPED_LEGACY_TYPES: Final[frozenset[str]] = frozenset({"sync", "audience"})


def legacy_token(resource_type: str, action: str) -> str:
    """Compact token of a legacy (type, action) permission, e.g. ``y.s`` for sync start."""
    return f"{LEGACY_TYPE_CODES[resource_type]}.{LEGACY_ACTION_CODES[action]}"


def check_legacy_pair(resource_type: str, action: str, field: str = "grant") -> None:
    """Raise UnknownGrantError unless ``action`` applies to ``resource_type``."""
    if resource_type not in LEGACY_APPLICABLE:
        raise UnknownGrantError("resource.type", f"unknown legacy resource type {resource_type!r}")
    if action not in LEGACY_APPLICABLE[resource_type]:
        raise UnknownGrantError(field, f"action {action!r} does not apply to {resource_type!r}")


def is_known_grant_name(name: str) -> bool:
    """True when ``name`` is a v2 grant, the read pseudo grant or a legacy action."""
    return name in V2_GRANT_NAMES or name == READ or name in LEGACY_ACTIONS


def question_models(grant: str, ref_type: str | None) -> frozenset[str]:
    """The permissions models in which ``check(grant, ref_type)`` is a valid question.

    Raises UnknownGrantError when it is valid in neither (a caller bug).
    """
    models: set[str] = set()
    scope = WORKSPACE if ref_type is None else REF_TYPE_TO_SCOPE.get(ref_type)
    if scope is not None and (grant == READ or (scope, grant) in V2_GRANT_CODES):
        models.add("v2")
    if ref_type in LEGACY_APPLICABLE and grant in LEGACY_APPLICABLE[ref_type]:
        models.add("legacy")
    if not models:
        if not is_known_grant_name(grant):
            raise UnknownGrantError("grant", f"unknown grant or action {grant!r}")
        raise UnknownGrantError(
            "resource.type", f"{grant!r} cannot be asked about {ref_type or 'the workspace'!r}"
        )
    return frozenset(models)
