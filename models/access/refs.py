"""Layer: pure. References to syncs (the two-resource questions of contract §2.3)."""

from __future__ import annotations

from dataclasses import dataclass

from .inputs import OrgConfig, ResourceRef


def as_ref(value: str | ResourceRef, default_type: str) -> ResourceRef:
    """A plain id becomes a ResourceRef of ``default_type``."""
    return value if isinstance(value, ResourceRef) else ResourceRef(default_type, value)


@dataclass(frozen=True, slots=True)
class SyncRef:
    """A sync: its source side (v2: a source, or a parent model for audience syncs;
    legacy: the source), its destination, its Space, and for legacy its labels and model."""

    source: ResourceRef
    destination: ResourceRef
    space_id: str | None = None
    id: str | None = None
    labels: frozenset[tuple[str, str]] | None = None
    model: ResourceRef | None = None

    @classmethod
    def of(
        cls,
        source: str | ResourceRef,
        destination: str | ResourceRef,
        space_id: str | None = None,
        *,
        id: str | None = None,
        labels: frozenset[tuple[str, str]] | None = None,
        model: str | ResourceRef | None = None,
    ) -> SyncRef:
        return cls(
            as_ref(source, "source"),
            as_ref(destination, "destination"),
            space_id,
            id,
            labels,
            None if model is None else as_ref(model, "model"),
        )

    def with_registered_labels(self, workspace_id: str, config: OrgConfig) -> SyncRef:
        """Fill legacy labels of the sync, its source, destination and model from the registry."""
        labels = self.labels
        if labels is None and self.id is not None:
            labels = config.labels_by_resource.get((workspace_id, "sync", self.id))
        return SyncRef(
            config.with_registered_labels(workspace_id, self.source),
            config.with_registered_labels(workspace_id, self.destination),
            self.space_id,
            self.id,
            labels,
            None if self.model is None else config.with_registered_labels(workspace_id, self.model),
        )
