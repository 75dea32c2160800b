"""Layer: pure. The access-model core of idsync (no SQLAlchemy / Redis / Celery / web imports).

Inputs (``inputs``): ``User``, ``Workspace``, ``Space``, ``OrgAdminBinding``,
``RoleBinding``, ``SpaceAssignment``, ``ParentModelSubsets``, ``SubsetCategory``,
``RegisteredResource``, ``OrgConfig``, ``ResourceRef``, ``SyncRef``, ``MANUAL``.

Roles (``roles``, ``catalogue``): ``V2Role``, ``ResourceGrant``, ``SubsetLimit``,
``LegacyRole``, ``PolicyStatement``, ``V2_PREBUILT``, ``LEGACY_BUILTIN``,
``LEGACY_PRECEDENCE``, ``parse_v2_role``, ``parse_legacy_role``,
``parse_policy_statements``, ``validate_custom_role``, ``config_problems``.

Reference evaluator (``evaluator``, ``decisions``): ``evaluate_groups``,
``evaluate_workspace``, ``evaluate_user``, ``WorkspaceAccess``, ``decide_check``,
``decide_sync``, ``decide_model_edit``, ``Decision``.

User-level API (``access_model``): ``AccessModel`` with ``check``, ``check_sync``,
``visible_spaces``, ``check_model_edit``, ``check_many``, ``check_sync_many``,
``visible_spaces_many``, ``who_can``, ``what_can``, ``legacy_conflicts``,
``explain``, ``explain_sync``.

Compiled cache form (``compiled``, ``compiler``, ``compiled_checks``):
``compile_for_groups``, ``Compiler``, ``Compiled``, ``encode_compiled``,
``decode_compiled``, ``encode_workspace_map``, ``decode_workspace_map``,
``group_set_key``, ``check_compiled``, ``check_sync_compiled``,
``check_compiled_reason``, ``check_sync_compiled_reason``,
``check_model_edit_compiled``, ``visible_spaces_compiled``.

Reason codes of an answer (``reasons``): ``REASONS``, ``DENY_REASONS``, ``GRANTED``….

Mapping rules (``mapping_rules``): ``MappingRule``, ``ScimGroup``,
``validate_mapping_rule``, ``apply_mapping_rules``, ``MappingResult``.

Errors (``errors``): ``AccessModelError``, ``ValidationError``,
``UnknownGrantError``, ``UnsafePatternError``. Rule names: ``RULES``.
"""

from .access_model import AccessModel, LegacyConflict, Question, WhatCan
from .catalogue import (
    LEGACY_BUILTIN,
    LEGACY_PRECEDENCE,
    V2_PREBUILT,
    V2_PREBUILT_TABLE,
    validate_custom_role,
)
from .compiled import (
    Compiled,
    decode_compiled,
    decode_workspace_map,
    encode_compiled,
    encode_workspace_map,
    group_set_key,
)
from .compiled_checks import (
    check_compiled,
    check_compiled_reason,
    check_model_edit_compiled,
    check_sync_compiled,
    check_sync_compiled_reason,
    visible_spaces_compiled,
)
from .compiler import Compiler, compile_for_groups
from .config_checks import ConfigProblem, config_problems
from .decisions import Decision, ModelEditDecision, decide_check, decide_model_edit, decide_sync
from .errors import AccessModelError, UnknownGrantError, UnsafePatternError, ValidationError
from .evaluator import (
    ALL,
    VisibleSpaces,
    WorkspaceAccess,
    evaluate_groups,
    evaluate_user,
    evaluate_workspace,
)
from .explain import Explanation
from .inputs import (
    MANUAL,
    OrgAdminBinding,
    OrgConfig,
    ParentModelSubsets,
    RegisteredResource,
    ResourceRef,
    RoleBinding,
    Space,
    SpaceAssignment,
    User,
    Workspace,
)
from .mapping_rules import (
    MappingProblem,
    MappingResult,
    MappingRule,
    ScimGroup,
    apply_mapping_rules,
    validate_mapping_rule,
)
from .reasons import DENY_REASONS, GRANTED, REASONS
from .refs import SyncRef
from .roles import (
    LegacyRole,
    PolicyStatement,
    ResourceGrant,
    V2Role,
    parse_legacy_role,
    parse_policy_statements,
    parse_v2_role,
)
from .rules import RULES
from .subsets import SubsetCategory, SubsetLimit

__all__ = [
    "ALL",
    "DENY_REASONS",
    "GRANTED",
    "LEGACY_BUILTIN",
    "LEGACY_PRECEDENCE",
    "MANUAL",
    "REASONS",
    "RULES",
    "V2_PREBUILT",
    "V2_PREBUILT_TABLE",
    "AccessModel",
    "AccessModelError",
    "Compiled",
    "Compiler",
    "ConfigProblem",
    "Decision",
    "Explanation",
    "LegacyConflict",
    "LegacyRole",
    "MappingProblem",
    "MappingResult",
    "MappingRule",
    "ModelEditDecision",
    "OrgAdminBinding",
    "OrgConfig",
    "ParentModelSubsets",
    "PolicyStatement",
    "Question",
    "RegisteredResource",
    "ResourceGrant",
    "ResourceRef",
    "RoleBinding",
    "ScimGroup",
    "Space",
    "SpaceAssignment",
    "SubsetCategory",
    "SubsetLimit",
    "SyncRef",
    "UnknownGrantError",
    "UnsafePatternError",
    "User",
    "V2Role",
    "ValidationError",
    "VisibleSpaces",
    "WhatCan",
    "Workspace",
    "WorkspaceAccess",
    "apply_mapping_rules",
    "check_compiled",
    "check_compiled_reason",
    "check_model_edit_compiled",
    "check_sync_compiled",
    "check_sync_compiled_reason",
    "compile_for_groups",
    "config_problems",
    "decide_check",
    "decide_model_edit",
    "decide_sync",
    "decode_compiled",
    "decode_workspace_map",
    "encode_compiled",
    "encode_workspace_map",
    "evaluate_groups",
    "evaluate_user",
    "evaluate_workspace",
    "group_set_key",
    "parse_legacy_role",
    "parse_policy_statements",
    "parse_v2_role",
    "validate_custom_role",
    "validate_mapping_rule",
    "visible_spaces_compiled",
]
