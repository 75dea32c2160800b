"""Layer: pure. Named decision rules. Every contract "Decision" and every point idsync had to
fix itself is one entry here; ``explain`` output lists the names that applied."""

from __future__ import annotations

from typing import Final

RULES: Final[dict[str, str]] = {
    # users and groups
    "users.inactive_or_deleted_denied": (
        "An inactive, deleted or unknown user has no permissions anywhere; checks deny, "
        "never raise."
    ),
    "groups.union": "A user's permissions are the union of their groups' permissions.",
    "groups.no_role_sees_nothing": (
        "A user with no role binding in a workspace has no permission and no visible Space there."
    ),
    "check.invalid_for_model": (
        "A question valid only in the other permissions model (a v2 grant in a legacy "
        "workspace or a legacy action in a v2 one) is denied; one valid in neither raises."
    ),
    # org admin / environments
    "org_admin.workspace_admin_everywhere": (
        "An organization-admin group is workspace admin in every workspace, including "
        "workspaces created later."
    ),
    "environments.inherit_parent": (
        "An environment's effective permissions, settings and Spaces are those of its root "
        "workspace; bindings made on the environment itself are ignored."
    ),
    "bindings.role_model_mismatch_ignored": (
        "A binding to a role of the other permissions model (v2 role in a legacy workspace or "
        "vice versa), or to an unknown role, grants nothing and is reported."
    ),
    # v2
    "v2.admin_holds_every_grant": (
        "The pre-built admin role holds every grant on every resource, incl. manage_workspace."
    ),
    "v2.prebuilt_table": "Pre-built roles grant exactly the contract's table (§2.2).",
    "v2.wildcard_resource": "A grant on '*' covers every resource of its type, incl. future ones.",
    "v2.no_mix_and_match": (
        "A sync (source/parent model -> destination) needs the source-side and the "
        "destination-side grant from the SAME group."
    ),
    "v2.any_role_reads": "Reading metadata ('read') needs any role in the workspace.",
    "v2.model_edit_covers_syncs": (
        "Editing a model needs configure on its source and the right to edit every sync using it."
    ),
    "v2.audience_sync_trigger_both_sides": (
        "Triggering an audience sync needs trigger_audience_syncs on the parent model and "
        "trigger_syncs on the destination from the same group."
    ),
    "approvals.split": (
        "With approvals_required, configure_models_syncs/configure_syncs become draft_* + "
        "approve_*; 'configure' (publish without review, delete) needs both."
    ),
    "approvals.off_merge_per_group": (
        "Without approval flows, draft_X + approve_X held by one group on the same resource are "
        "the single configure_X grant; a lone half grants nothing."
    ),
    "subsets.required_without_value_denies": (
        "A subset-limited grant with no value chosen for a required category allows no audience."
    ),
    "subsets.only_chosen_values": (
        "Under a subset limit, an audience may use only the values chosen for each category."
    ),
    "subsets.optional_allows_unsubsetted": (
        "For a non-required category, a limited grant allows the chosen values or audiences that "
        "use no value of that category."
    ),
    "subsets.unknown_category_denied": (
        "Under a subset limit, an audience using a category its parent model does not declare is "
        "denied."
    ),
    # legacy
    "legacy.one_role_per_user": (
        "In a legacy workspace a user gets one role: the highest of their groups' roles in the "
        "order Admin, Workspace editor, Workspace draft contributor, Model + sync editor, Source "
        "admin, Destination admin, Sync editor, Audience editor, Workspace viewer."
    ),
    "legacy.custom_role_precedence": (
        "Custom legacy roles rank below every built-in role except Workspace viewer; among "
        "themselves by role id."
    ),
    "legacy.full_star_is_draft": (
        "Full* (draft contributor on models and syncs): every action except approve; edits are "
        "drafts (no 'publish')."
    ),
    "legacy.limited_excludes_enable_start": "Limited (syncs): every sync action but enable, start.",
    "legacy.approve_models_syncs": (
        "'approve' on models and syncs for every built-in role except draft contributor and "
        "viewer, whatever their level on that column."
    ),
    "legacy.read_implies_preview_debugger": (
        "'read' implies 'preview' and 'debugger' where they apply."
    ),
    "legacy.label_conditions": (
        "A conditioned statement applies only when the resource's labels (given by the caller or "
        "registered) match every condition; unknown labels never match."
    ),
    "legacy.use_needs_read": (
        "A sync action also needs 'read' on the sync's source, destination and model (if given)."
    ),
    "legacy.admin_is_workspace_admin": (
        "In a legacy workspace only the Admin role (or org admin) counts as workspace admin."
    ),
    # spaces
    "spaces.disabled_no_filter": "With spaces_enabled=false there is no Space filter.",
    "spaces.admins_see_all": "Workspace admins (directly or as org admin) see every Space.",
    "spaces.visibility_per_user": (
        "A user sees a Space when any of their groups holding a role in the workspace is assigned "
        "to it; Space and grant may come from different groups."
    ),
    "spaces.assignment_alone_grants_nothing": (
        "A Space assignment of a group without a role binding in the workspace grants nothing."
    ),
    "spaces.space_and_grant": (
        "Acting on an audience or sync needs its Space visible AND the grant; with Spaces on, a "
        "Space-scoped check without a space id is denied."
    ),
    # mapping rules
    "mapping.regex_full_match": "Regular-expression rules must match the whole attribute (RE2).",
    "mapping.prebuilt_alias_in_legacy": (
        "A rule resolving to a v2 pre-built role id in a legacy workspace binds its legacy "
        "counterpart (admin, editor -> Workspace editor, viewer -> Workspace viewer, "
        "draft_editor -> Workspace draft contributor); other model mismatches are problems."
    ),
    "mapping.report_missing_targets": (
        "A rule whose target workspace, role or space does not exist is reported, never dropped "
        "silently."
    ),
}


def rule(name: str) -> str:
    """Return ``name`` after checking it is a declared rule (guards typos)."""
    if name not in RULES:
        raise KeyError(name)
    return name
