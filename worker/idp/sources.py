"""Upstream directories. ``Source`` is the seam: the SCIM 2.0 adapter is here; Okta's
Users API and Microsoft Graph adapters implement the same two iterators."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from worker.idp.client import HttpClient, IdpError


@dataclass(frozen=True)
class UpstreamUser:
    id: str
    user_name: str
    active: bool = True
    display_name: str | None = None


@dataclass(frozen=True)
class UpstreamGroup:
    id: str
    display_name: str
    member_ids: frozenset[str] = frozenset()


class Source(Protocol):
    name: str

    def users(self) -> Iterator[UpstreamUser]: ...

    def groups(self) -> Iterator[UpstreamGroup]: ...


class ScimSource:
    """A SCIM 2.0 service provider: ``/Users`` and ``/Groups`` paged by startIndex/count."""

    def __init__(self, client: HttpClient, *, name: str = "scim", page_size: int = 100) -> None:
        self.client = client
        self.name = name
        self.page_size = page_size

    def _pages(self, path: str) -> Iterator[dict[str, Any]]:
        start = 1
        while True:
            page = self.client.get_json(path, {"startIndex": start, "count": self.page_size})
            resources = page.get("Resources") or []
            if not isinstance(resources, list):
                raise IdpError(f"{path}: Resources is not a list")
            yield from resources
            total = int(page.get("totalResults", 0))
            start += len(resources)
            if not resources or start > total:
                return

    def users(self) -> Iterator[UpstreamUser]:
        for r in self._pages("/Users"):
            yield UpstreamUser(
                id=str(r["id"]),
                user_name=str(r["userName"]),
                active=bool(r.get("active", True)),
                display_name=r.get("displayName"),
            )

    def groups(self) -> Iterator[UpstreamGroup]:
        for r in self._pages("/Groups"):
            members = frozenset(str(m["value"]) for m in r.get("members") or [] if "value" in m)
            yield UpstreamGroup(str(r["id"]), str(r["displayName"]), members)
