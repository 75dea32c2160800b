"""Layer: pure. Inputs of the access model: users, org configuration, bindings, resource refs.

All frozen dataclasses of plain values, so the worker can build them from SQL
rows and tests can build them by hand. ``OrgConfig`` also carries lazily built
lookup indexes (``functools.cached_property``); it must not be mutated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Final

from .catalogue import BUILTIN_ROLES
from .grants import SPACE_SCOPED_LEGACY_TYPES, PermissionsModel
from .roles import Role
from .subsets import CategorySpec, SubsetCategory

MANUAL: Final = "manual"
"""Provenance of a binding an administrator made by hand; otherwise a mapping rule id."""


@dataclass(frozen=True, slots=True)
class User:
    """A SCIM user and the ids of the groups it belongs to."""

    id: str
    active: bool = True
    deleted: bool = False
    group_ids: frozenset[str] = frozenset()

    @property
    def can_act(self) -> bool:
        """Rule users.inactive_or_deleted_denied."""
        return self.active and not self.deleted


@dataclass(frozen=True, slots=True)
class Workspace:
    """A workspace, or an environment when ``parent_workspace_id`` is set."""

    id: str
    permissions_model: PermissionsModel = "v2"
    spaces_enabled: bool = False
    approvals_required: bool = False
    parent_workspace_id: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Space:
    """A Space; its id is unique within its workspace (two workspaces may both have ``UK``)."""

    id: str
    workspace_id: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class OrgAdminBinding:
    group_id: str
    source: str = MANUAL


@dataclass(frozen=True, slots=True)
class RoleBinding:
    group_id: str
    workspace_id: str
    role_id: str
    source: str = MANUAL


@dataclass(frozen=True, slots=True)
class SpaceAssignment:
    """Group ``group_id`` is assigned to Space ``space_id`` of workspace ``workspace_id``."""

    group_id: str
    workspace_id: str
    space_id: str
    source: str = MANUAL


Binding = OrgAdminBinding | RoleBinding | SpaceAssignment


@dataclass(frozen=True, slots=True)
class ParentModelSubsets:
    """Subset categories of one parent model in one workspace."""

    workspace_id: str
    parent_model_id: str
    categories: tuple[SubsetCategory, ...]


@dataclass(frozen=True, slots=True)
class RegisteredResource:
    """A resource idsync knows the labels of (legacy label-based access control)."""

    workspace_id: str
    type: str
    id: str
    labels: frozenset[tuple[str, str]] = frozenset()


def labels_of(mapping: Mapping[str, str]) -> frozenset[tuple[str, str]]:
    return frozenset(mapping.items())


@dataclass(frozen=True, slots=True)
class ResourceRef:
    """What a check is about.

    v2: ``type`` is the grant's scope (``source``, ``destination``, ``parent_model``,
    ``event_*``) or ``audience`` (checked on its parent model ``id``). Legacy: one of
    the legacy resource types. ``space_scoped`` marks audiences and syncs: with
    Spaces on, such a check needs ``space_id`` and a visible Space. ``subsets`` are
    the (category, value) pairs an audience uses; ``labels`` feed legacy conditions.
    """

    type: str
    id: str | None = None
    space_id: str | None = None
    labels: frozenset[tuple[str, str]] | None = None
    subsets: frozenset[tuple[str, str]] | None = None
    space_scoped: bool = False

    @property
    def needs_space(self) -> bool:
        return (
            self.space_scoped or self.type == "audience" or (self.type in SPACE_SCOPED_LEGACY_TYPES)
        )

    @classmethod
    def audience(
        cls,
        parent_model_id: str,
        space_id: str | None,
        subsets: Mapping[str, Iterable[str]] | None = None,
    ) -> ResourceRef:
        """An audience on ``parent_model_id`` in ``space_id`` using ``subsets``."""
        pairs = None
        if subsets is not None:
            pairs = frozenset((k, v) for k, vs in subsets.items() for v in vs)
        return cls("audience", parent_model_id, space_id=space_id, subsets=pairs)

    @classmethod
    def sync_on(cls, destination_id: str, space_id: str | None) -> ResourceRef:
        """A v2 sync to ``destination_id`` living in ``space_id`` (for trigger_syncs)."""
        return cls("destination", destination_id, space_id=space_id, space_scoped=True)


@dataclass(frozen=True)
class OrgConfig:
    """Everything the evaluator needs about one organization (besides memberships)."""

    workspaces: tuple[Workspace, ...] = ()
    spaces: tuple[Space, ...] = ()
    roles: tuple[Role, ...] = ()
    """Custom roles; built-in ones are always available by their ids."""
    org_admins: tuple[OrgAdminBinding, ...] = ()
    role_bindings: tuple[RoleBinding, ...] = ()
    space_assignments: tuple[SpaceAssignment, ...] = ()
    subset_categories: tuple[ParentModelSubsets, ...] = ()
    resources: tuple[RegisteredResource, ...] = ()

    @cached_property
    def workspace_by_id(self) -> dict[str, Workspace]:
        return {w.id: w for w in self.workspaces}

    @cached_property
    def role_by_id(self) -> dict[str, Role]:
        return {**{r.id: r for r in self.roles}, **BUILTIN_ROLES}

    @cached_property
    def space_by_key(self) -> dict[tuple[str, str], Space]:
        """``(workspace id, Space id)`` -> Space (Space ids are unique per workspace)."""
        return {(s.workspace_id, s.id): s for s in self.spaces}

    @cached_property
    def roots(self) -> dict[str, str | None]:
        """Workspace id -> root workspace id (None for an environment cycle or dangling parent).

        Rule environments.inherit_parent.
        """
        out: dict[str, str | None] = {}
        for ws in self.workspaces:
            seen = {ws.id}
            cur = ws
            root: str | None = ws.id
            while cur.parent_workspace_id is not None:
                parent = self.workspace_by_id.get(cur.parent_workspace_id)
                if parent is None or parent.id in seen:
                    root = None
                    break
                seen.add(parent.id)
                cur = parent
                root = cur.id
            out[ws.id] = root
        return out

    @cached_property
    def categories_by_model(self) -> dict[tuple[str, str], tuple[CategorySpec, ...]]:
        return {
            (p.workspace_id, p.parent_model_id): tuple(
                sorted((c.name, c.required) for c in p.categories)
            )
            for p in self.subset_categories
        }

    @cached_property
    def group_index(self) -> GroupIndex:
        return build_group_index(self)

    def categories_of(self, workspace_id: str, parent_model_id: str) -> tuple[CategorySpec, ...]:
        return self.categories_by_model.get((workspace_id, parent_model_id), ())

    @cached_property
    def labels_by_resource(self) -> dict[tuple[str, str, str], frozenset[tuple[str, str]]]:
        return {(r.workspace_id, r.type, r.id): r.labels for r in self.resources}

    def with_registered_labels(self, workspace_id: str, ref: ResourceRef) -> ResourceRef:
        """``ref`` with labels filled from the registered resources when the caller gave none."""
        if ref.labels is not None or ref.id is None:
            return ref
        labels = self.labels_by_resource.get((workspace_id, ref.type, ref.id))
        if labels is None:
            return ref
        return ResourceRef(ref.type, ref.id, ref.space_id, labels, ref.subsets, ref.space_scoped)


@dataclass(frozen=True, slots=True)
class GroupIndex:
    """Per-group view of the bindings (built once per config)."""

    org_admin_sources: dict[str, tuple[str, ...]]
    role_bindings: dict[str, tuple[RoleBinding, ...]]
    space_assignments: dict[str, tuple[SpaceAssignment, ...]]


def build_group_index(config: OrgConfig) -> GroupIndex:
    admins: dict[str, list[str]] = {}
    for b in config.org_admins:
        admins.setdefault(b.group_id, []).append(b.source)
    roles: dict[str, list[RoleBinding]] = {}
    for rb in config.role_bindings:
        roles.setdefault(rb.group_id, []).append(rb)
    spaces: dict[str, list[SpaceAssignment]] = {}
    for sa in config.space_assignments:
        spaces.setdefault(sa.group_id, []).append(sa)
    return GroupIndex(
        {k: tuple(sorted(set(v))) for k, v in admins.items()},
        {k: tuple(v) for k, v in roles.items()},
        {k: tuple(v) for k, v in spaces.items()},
    )
