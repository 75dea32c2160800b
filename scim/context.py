"""Layer: pure. Who is making a SCIM request, and where its resources live."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScimContext:
    org_id: str
    actor: str  # e.g. "scim-token:<id>"; recorded in the change log
    base_url: str  # absolute SCIM base URL, for meta.location and $ref
    request_id: str | None = None
