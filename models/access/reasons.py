"""Layer: pure. Reason codes of a check's answer: one closed list for ``explain``, the check
API and the Python check client (docs/admin-api.md, "Reasons").

An allow is ``granted``. A deny names the first thing missing, in this order: the user
(unknown, inactive or deleted), a role in the workspace, a question valid for the
workspace's permissions model, the Space (none given for a Space-scoped resource, or
not visible), then the grant (not held at all, held only under a subset limit that
does not cover the audience, each side of a sync held only by different groups, or a
legacy statement whose label conditions the resource does not meet).

The reference decisions (``decisions.py``) and the compiled ones
(``compiled_checks.py``) produce the same code for every question (property-tested).
"""

from __future__ import annotations

from typing import Final

GRANTED: Final = "granted"

UNKNOWN_USER: Final = "unknown_user"
"""No such user in the organization (a deleted user is no longer known to ``explain``)."""
USER_INACTIVE_OR_DELETED: Final = "user_inactive_or_deleted"
NO_ROLE_IN_WORKSPACE: Final = "no_role_in_workspace"
NOT_VALID_FOR_MODEL: Final = "not_valid_for_model"
"""A v2 grant asked in a legacy workspace, or a legacy action in a v2 one."""
SPACE_ID_REQUIRED: Final = "space_id_required"
"""Spaces are enabled and the resource (audience, sync) lives in a Space: give ``space_id``."""
SPACE_NOT_VISIBLE: Final = "space_not_visible"
"""No group of the user that holds a role in the workspace is assigned to the Space."""
GRANT_MISSING: Final = "grant_missing"
SUBSET_NOT_ALLOWED: Final = "subset_not_allowed"
"""The grant is held only under subset limits that do not cover the audience's values."""
NOT_SAME_GROUP: Final = "not_same_group"
"""A sync's source-side and destination-side grants are held, but by different groups."""
LABELS_NOT_MATCHED: Final = "labels_not_matched"
"""Legacy: a statement allows the action only on resources with labels this one lacks."""

DENY_REASONS: Final[tuple[str, ...]] = (
    UNKNOWN_USER,
    USER_INACTIVE_OR_DELETED,
    NO_ROLE_IN_WORKSPACE,
    NOT_VALID_FOR_MODEL,
    SPACE_ID_REQUIRED,
    SPACE_NOT_VISIBLE,
    GRANT_MISSING,
    SUBSET_NOT_ALLOWED,
    NOT_SAME_GROUP,
    LABELS_NOT_MATCHED,
)
"""Every reason a deny can carry (closed list)."""

REASONS: Final[tuple[str, ...]] = (GRANTED, *DENY_REASONS)
