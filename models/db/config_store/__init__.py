"""Layer: store. Writes to the access configuration, shared by the admin API and ``idsync
apply``, one module per aggregate (context, workspaces, spaces, roles, bindings,
resources, rules); this package hands their public names on.

Every public write:
- validates first (``ConfigError`` naming the field; nothing is written, and the
  caller's transaction rolls back anything already flushed);
- re-applies the mapping rules when the change can alter what rules produce
  (targets appearing or vanishing), unless ``ctx.defer_rules`` (``idsync apply``
  re-applies once at the end): a rule write re-applies that rule, a workspace, Space
  or role write only the (rule, group) pairs it can change
  (``models.db.rule_application.reapply_for_targets``);
- records exactly one change row as its last statement, naming every group whose
  members' permissions may change (``models.db.config_impact``), so the worker can
  recompute exactly those users.

Ids of workspaces, Spaces, custom roles and rules: 1-36 characters of letters,
digits, ``_ . -``, starting with a letter or digit (admin-chosen slugs or UUIDs).
"""

from models.db.config_store.bindings import (
    BindingRow,
    change_role_binding,
    create_org_admin_binding,
    create_role_binding,
    create_space_assignment,
    delete_binding,
)
from models.db.config_store.context import (
    ID_RE,
    WriteContext,
    check_id,
    check_unique,
    get_group,
    get_space,
    get_workspace,
    role_model,
    space_key,
)
from models.db.config_store.resources import delete_resource, put_resource, set_subset_categories
from models.db.config_store.roles import create_role, delete_role, update_role, validate_role
from models.db.config_store.rules import (
    RULE_FIELDS,
    RuleSpec,
    create_rule,
    delete_rule,
    update_rule,
)
from models.db.config_store.spaces import create_space, delete_space, update_space
from models.db.config_store.workspaces import (
    WorkspaceSpec,
    create_workspace,
    delete_workspace,
    update_workspace,
)
from models.db.rule_application import RuleApplication, apply_mapping_rules

__all__ = [
    "ID_RE",
    "RULE_FIELDS",
    "BindingRow",
    "RuleApplication",
    "RuleSpec",
    "WorkspaceSpec",
    "WriteContext",
    "apply_mapping_rules",
    "change_role_binding",
    "check_id",
    "check_unique",
    "create_org_admin_binding",
    "create_role",
    "create_role_binding",
    "create_rule",
    "create_space",
    "create_space_assignment",
    "create_workspace",
    "delete_binding",
    "delete_resource",
    "delete_role",
    "delete_rule",
    "delete_space",
    "delete_workspace",
    "get_group",
    "get_space",
    "get_workspace",
    "put_resource",
    "role_model",
    "set_subset_categories",
    "space_key",
    "update_role",
    "update_rule",
    "update_space",
    "update_workspace",
    "validate_role",
]
