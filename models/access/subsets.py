"""Layer: pure. Subset limits on parent-model grants (contract §2.1 "Subsets").

A custom role may limit ``view_parent_model_data`` and
``configure_audiences_syncs`` on a parent model P to chosen values of P's
subset categories:

* required category with no value chosen: no audience on P at all
  (rule ``subsets.required_without_value_denies``);
* required category with values chosen: the audience must use values of that
  category and only chosen ones;
* non-required category: the audience uses only chosen values, or none
  (rule ``subsets.optional_allows_unsubsetted``);
* an audience using a category P does not declare is denied under a limit
  (rule ``subsets.unknown_category_denied``).

Both the evaluator and the compiled-form checker call :func:`limit_allows`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# (category name, required) as stored per parent model.
CategorySpec = tuple[str, bool]


@dataclass(frozen=True, slots=True)
class SubsetCategory:
    """A subset category of a parent model, e.g. ``region`` (required)."""

    name: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class SubsetLimit:
    """Chosen values per category; categories absent here have no value chosen."""

    chosen: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @classmethod
    def of(cls, mapping: Mapping[str, Iterable[str]]) -> SubsetLimit:
        return cls(tuple(sorted((k, tuple(sorted(set(v)))) for k, v in mapping.items())))

    def values_for(self, category: str) -> frozenset[str]:
        for name, values in self.chosen:
            if name == category:
                return frozenset(values)
        return frozenset()


def audience_subsets(pairs: Iterable[tuple[str, str]]) -> dict[str, frozenset[str]]:
    """Group (category, value) pairs used by an audience by category."""
    out: dict[str, set[str]] = {}
    for cat, value in pairs:
        out.setdefault(cat, set()).add(value)
    return {k: frozenset(v) for k, v in out.items()}


def limit_allows(
    categories: Iterable[CategorySpec],
    limit: SubsetLimit | None,
    used: frozenset[tuple[str, str]] | None,
) -> bool:
    """Does a grant with ``limit`` cover an audience using ``used`` subset values?

    ``used=None`` asks about "some audience on P": true unless a required
    category has no chosen value.
    """
    if limit is None:
        return True
    cats = tuple(categories)
    if used is None:
        return all(limit.values_for(name) for name, required in cats if required)
    by_cat = audience_subsets(used)
    known = {name for name, _ in cats}
    if any(cat not in known for cat in by_cat):
        return False
    for name, required in cats:
        chosen = limit.values_for(name)
        values = by_cat.get(name, frozenset())
        if required:
            if not chosen or not values or not values <= chosen:
                return False
        elif not values <= chosen:
            return False
    return True


@dataclass(frozen=True, slots=True)
class UnknownLimitCategory:
    """A subset limit of a role naming a category the workspace does not have."""

    field: str
    """Path in the role's body: ``resource_grants[i].subset_limit.<category>``."""
    category: str
    parent_model_id: str
    """The grant's parent model, or ``*``."""
    existing: tuple[str, ...]
    """The categories that do exist there (sorted)."""

    def message(self, workspace_id: str) -> str:
        where = (
            "any parent model"
            if self.parent_model_id == "*"
            else f"parent model {self.parent_model_id!r}"
        )
        have = ", ".join(self.existing) if self.existing else "none"
        return (
            f"no subset category {self.category!r} on {where} in workspace {workspace_id!r}"
            f" (categories there: {have})"
        )


def unknown_limit_categories(
    resource_grants: Iterable[tuple[str, str, SubsetLimit | None]],
    categories: Mapping[str, Iterable[str]],
) -> list[UnknownLimitCategory]:
    """Subset limits naming a category the workspace does not have.

    ``resource_grants``: a role's ``(scope, resource_id, limit)`` in body order;
    ``categories``: the workspace's category names by parent model id. A limit on
    parent model P may name P's categories; one on ``*`` any parent model's. Such a
    limit would deny silently: the category never matches (``limit_allows``)."""
    by_model = {pm: frozenset(names) for pm, names in categories.items()}
    every = frozenset().union(*by_model.values()) if by_model else frozenset()
    out: list[UnknownLimitCategory] = []
    for i, (scope, resource_id, limit) in enumerate(resource_grants):
        if scope != "parent_model" or limit is None:
            continue
        known = every if resource_id == "*" else by_model.get(resource_id, frozenset())
        for name, _ in limit.chosen:
            if name not in known:
                out.append(
                    UnknownLimitCategory(
                        f"resource_grants[{i}].subset_limit.{name}",
                        name,
                        resource_id,
                        tuple(sorted(known)),
                    )
                )
    return out
