"""Layer: app. An explanation in words a person reads: the answer's reason code
(``models.access.reasons``) as a sentence, and each decision rule ``explain`` names with
its text (``models.access.rules.RULES``, the same words docs/access-model-decisions.md
shows)."""

from __future__ import annotations

from typing import Any, Final

from models.access import reasons
from models.access.rules import RULES

REASON_WORDS: Final[dict[str, str]] = {
    reasons.GRANTED: "Allowed: one of the person's groups holds what the question needs.",
    reasons.UNKNOWN_USER: "Denied: there is no such person in this organization.",
    reasons.USER_INACTIVE_OR_DELETED: (
        "Denied: the person is deactivated or deleted, so they have no permissions anywhere."
    ),
    reasons.NO_ROLE_IN_WORKSPACE: (
        "Denied: none of the person's groups holds a role in this workspace."
    ),
    reasons.NOT_VALID_FOR_MODEL: (
        "Denied: the question belongs to the other permissions model than this workspace's "
        "(a v2 grant in a legacy workspace, or a legacy action in a v2 one)."
    ),
    reasons.SPACE_ID_REQUIRED: (
        "Denied: Spaces are on in this workspace and the resource lives in a Space: name it."
    ),
    reasons.SPACE_NOT_VISIBLE: (
        "Denied: the Space is not visible to the person: no group of theirs with a role "
        "here is assigned to it."
    ),
    reasons.GRANT_MISSING: "Denied: none of the person's groups holds that grant here.",
    reasons.SUBSET_NOT_ALLOWED: (
        "Denied: the grant is held only under subset limits that do not cover the values "
        "this resource uses."
    ),
    reasons.NOT_SAME_GROUP: (
        "Denied: both sides of the sync are granted, but only by different groups; one "
        "group must hold both."
    ),
    reasons.LABELS_NOT_MATCHED: (
        "Denied: the legacy role allows this only on resources with labels this one lacks."
    ),
}


def reason_sentence(reason: str) -> str:
    return REASON_WORDS.get(reason, f"Answer: {reason}.")


def rule_sentences(names: list[str]) -> list[tuple[str, str]]:
    """``(rule name, its text)`` for each rule an explanation names."""
    return [(name, RULES.get(name, "")) for name in names]


def binding_source(source: str) -> str:
    """A binding's ``source`` in words: made by hand, by a mapping rule, or organization
    admin."""
    if source == "manual":
        return "bound by hand"
    if source.startswith("org_admin:"):
        inner = source.removeprefix("org_admin:")
        return "organization admin (" + binding_source(inner) + ")"
    return f"made by mapping rule {source}"


def explanation_view(explained: dict[str, Any], group_names: dict[str, str]) -> dict[str, Any]:
    """``POST /api/v1/explain``'s answer with the words added (``sentence``, ``rule_texts``,
    ``group_names``, each binding's ``group`` name and ``source_words``)."""

    def name(group_id: str) -> str:
        return group_names.get(group_id, group_id)

    return {
        **explained,
        "sentence": reason_sentence(str(explained["reason"])),
        "rule_texts": rule_sentences(list(explained.get("rules") or [])),
        "group_names": [name(g) for g in explained.get("groups") or []],
        "bindings": [
            {**b, "group": name(b["group_id"]), "source_words": binding_source(str(b["source"]))}
            for b in explained.get("bindings") or []
        ],
        "ignored_bindings": [
            {**i, "group": name(i["group_id"])} for i in explained.get("ignored_bindings") or []
        ],
    }
