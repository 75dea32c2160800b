"""Layer: pure. What a sync action needs (contract §2.3, §2.1 approval flows, §3).

Shared by the evaluator and the compiled-form checker: this is contract data,
the two deciders evaluate it independently.

v2 requirements are a conjunction of (source-side grant, destination-side grant)
pairs; each pair must be held by ONE group (rule ``v2.no_mix_and_match``); a
side of ``None`` means that pair only needs the other side.
"""

from __future__ import annotations

from typing import Final

from .errors import UnknownGrantError
from .grants import LEGACY_APPLICABLE

Pair = tuple[str | None, str | None]

V2_SYNC_ACTIONS: Final[dict[str, str]] = {
    "configure": "configure",
    "create": "configure",
    "update": "configure",
    "edit": "configure",
    "delete": "delete",
    "draft": "draft",
    "approve": "approve",
    "trigger": "trigger",
    "start": "trigger",
    "view_data": "view_data",
    "debugger": "view_data",
    "testrow": "view_data",
    "read": "read",
}

LEGACY_SYNC_ACTIONS: Final[dict[str, str]] = {
    **{a: a for a in LEGACY_APPLICABLE["sync"]},
    "configure": "update",
    "edit": "update",
    "draft": "update",
    "trigger": "start",
    "view_data": "debugger",
}

# (source kind, canonical action, approvals_required) -> required pairs.
_MODEL_SYNC: Final[dict[tuple[str, bool], tuple[Pair, ...]]] = {
    ("configure", False): (("configure_models_syncs", "configure_syncs"),),
    ("delete", False): (("configure_models_syncs", "configure_syncs"),),
    ("draft", False): (("configure_models_syncs", "configure_syncs"),),
    ("approve", False): (("configure_models_syncs", "configure_syncs"),),
    ("configure", True): (
        ("draft_models_syncs", "draft_syncs"),
        ("approve_models_syncs", "approve_syncs"),
    ),
    ("delete", True): (
        ("draft_models_syncs", "draft_syncs"),
        ("approve_models_syncs", "approve_syncs"),
    ),
    ("draft", True): (("draft_models_syncs", "draft_syncs"),),
    ("approve", True): (("approve_models_syncs", "approve_syncs"),),
    ("trigger", False): ((None, "trigger_syncs"),),
    ("trigger", True): ((None, "trigger_syncs"),),
    ("view_data", False): (("view_data", None),),
    ("view_data", True): (("view_data", None),),
}
_AUDIENCE_SYNC: Final[dict[tuple[str, bool], tuple[Pair, ...]]] = {
    ("configure", False): (("configure_audiences_syncs", "configure_syncs"),),
    ("delete", False): (("configure_audiences_syncs", "configure_syncs"),),
    ("draft", False): (("configure_audiences_syncs", "configure_syncs"),),
    ("approve", False): (("configure_audiences_syncs", "configure_syncs"),),
    ("configure", True): (
        ("configure_audiences_syncs", "draft_syncs"),
        ("approve_audience_syncs", "approve_syncs"),
    ),
    ("delete", True): (
        ("configure_audiences_syncs", "draft_syncs"),
        ("approve_audience_syncs", "approve_syncs"),
    ),
    ("draft", True): (("configure_audiences_syncs", "draft_syncs"),),
    ("approve", True): (("approve_audience_syncs", "approve_syncs"),),
    ("trigger", False): (("trigger_audience_syncs", "trigger_syncs"),),
    ("trigger", True): (("trigger_audience_syncs", "trigger_syncs"),),
    ("view_data", False): (("view_parent_model_data", None),),
    ("view_data", True): (("view_parent_model_data", None),),
}


def v2_sync_action(action: str) -> str:
    canonical = V2_SYNC_ACTIONS.get(action)
    if canonical is None:
        raise UnknownGrantError("action", f"unknown sync action {action!r}")
    return canonical


def legacy_sync_action(action: str) -> str:
    canonical = LEGACY_SYNC_ACTIONS.get(action)
    if canonical is None:
        raise UnknownGrantError("action", f"unknown legacy sync action {action!r}")
    return canonical


def v2_sync_requirements(source_scope: str, action: str, approvals: bool) -> tuple[Pair, ...]:
    """Required (source grant, destination grant) pairs; ``action`` is canonical, not read."""
    table = _AUDIENCE_SYNC if source_scope == "parent_model" else _MODEL_SYNC
    return table[(action, approvals)]


def sync_source_scope(ref_type: str) -> str:
    """The v2 scope of a sync's source side: a source (model sync) or a parent model."""
    if ref_type == "source":
        return "source"
    if ref_type in ("parent_model", "audience"):
        return "parent_model"
    raise UnknownGrantError(
        "source.type", f"a sync's source must be a source or parent model, not {ref_type!r}"
    )


def two_sided_grants() -> frozenset[str]:
    """Grant names that appear in a requirement needing both sides from one group."""
    return frozenset(
        name
        for table in (_MODEL_SYNC, _AUDIENCE_SYNC)
        for pairs in table.values()
        for sg, dg in pairs
        if sg is not None and dg is not None
        for name in (sg, dg)
    )
