"""Layer: worker. Upstream directories behind one seam, ``Source``: SCIM 2.0, Okta's
Users/Groups API and Microsoft Graph. Each maps upstream users and groups onto the same
``UpstreamUser`` / ``UpstreamGroup`` values, which ``worker.idp.pull`` turns into the same
SCIM documents (userName, name, emails, active, externalId = upstream id; group displayName,
externalId, members) and writes through the SCIM store functions.

Every iterator reads page after page; a failing page raises ``IdpError`` (after the
client's retries) and the pull then applies nothing."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import quote

from worker.idp.client import HttpClient, IdpError


@dataclass(frozen=True)
class UpstreamUser:
    id: str
    user_name: str
    active: bool = True
    display_name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    emails: tuple[str, ...] = ()
    """Email addresses, the primary one first."""


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
            raw_name = r.get("name")
            name: Mapping[str, Any] = raw_name if isinstance(raw_name, dict) else {}
            emails = [e for e in r.get("emails") or [] if isinstance(e, dict) and e.get("value")]
            emails.sort(key=lambda e: not e.get("primary", False))
            yield UpstreamUser(
                id=str(r["id"]),
                user_name=str(r["userName"]),
                active=bool(r.get("active", True)),
                display_name=r.get("displayName"),
                given_name=_opt(name.get("givenName")),
                family_name=_opt(name.get("familyName")),
                emails=_unique(str(e["value"]) for e in emails),
            )

    def groups(self) -> Iterator[UpstreamGroup]:
        for r in self._pages("/Groups"):
            members = frozenset(str(m["value"]) for m in r.get("members") or [] if "value" in m)
            yield UpstreamGroup(str(r["id"]), str(r["displayName"]), members)


def _opt(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _unique(values: Any) -> tuple[str, ...]:
    out: dict[str, None] = {}
    for v in values:
        if v:
            out.setdefault(str(v), None)
    return tuple(out)


def _items(page: Any, path: str) -> list[Mapping[str, Any]]:
    if not isinstance(page, list) or not all(isinstance(x, dict) for x in page):
        raise IdpError(f"{path}: expected a JSON array of objects")
    return page


OKTA_ACTIVE: Final = frozenset({"ACTIVE", "PASSWORD_EXPIRED", "LOCKED_OUT", "RECOVERY"})
"""Okta statuses mapped to ``active: true``: activated accounts, including those that
are temporarily locked out, awaiting a password reset or in recovery (Okta itself keeps
them assigned and its SCIM push keeps them ``active``; revoking their access on every
lockout would flap permissions). Not yet activated (STAGED, PROVISIONED), SUSPENDED and
DEPROVISIONED accounts are inactive, as Okta's push marks them."""


class OktaSource:
    """Okta's management API: ``/api/v1/users``, ``/api/v1/groups`` and
    ``/api/v1/groups/{id}/users``, paged by ``Link: <…>; rel="next"``.

    Auth is ``Authorization: SSWS <API token>`` (``okta_client``). Rate limits: a 429
    waits for ``X-Rate-Limit-Reset`` (or ``Retry-After``); a page that reports
    ``X-Rate-Limit-Remaining: 0`` pauses until the reset before the next request.
    """

    def __init__(self, client: HttpClient, *, name: str = "okta", page_size: int = 200) -> None:
        self.client = client
        self.name = name
        self.page_size = page_size

    def _pages(self, path: str) -> Iterator[Mapping[str, Any]]:
        url: str | None = path
        params: dict[str, Any] | None = {"limit": self.page_size}
        while url is not None:
            resp = self.client.get(url, params)
            yield from _items(resp.json(), path)
            nxt = resp.links.get("next", {}).get("url")
            url, params = (str(nxt), None) if nxt else (None, None)

    def users(self) -> Iterator[UpstreamUser]:
        for r in self._pages("/api/v1/users"):
            profile = r.get("profile") or {}
            yield UpstreamUser(
                id=str(r["id"]),
                user_name=str(profile["login"]),
                active=str(r.get("status", "")) in OKTA_ACTIVE,
                display_name=_opt(profile.get("displayName")),
                given_name=_opt(profile.get("firstName")),
                family_name=_opt(profile.get("lastName")),
                emails=_unique([profile.get("email"), profile.get("secondEmail")]),
            )

    def groups(self) -> Iterator[UpstreamGroup]:
        for r in self._pages("/api/v1/groups"):
            gid = str(r["id"])
            members = frozenset(
                str(u["id"]) for u in self._pages(f"/api/v1/groups/{quote(gid, safe='')}/users")
            )
            yield UpstreamGroup(gid, str((r.get("profile") or {})["name"]), members)


GRAPH_USER_FIELDS: Final = (
    "id",
    "userPrincipalName",
    "displayName",
    "givenName",
    "surname",
    "mail",
    "otherMails",
    "accountEnabled",
)


class GraphSource:
    """Microsoft Graph v1.0: ``/users``, ``/groups`` and
    ``/groups/{id}/members/microsoft.graph.user`` (users only: nested groups, devices
    and service principals are not members here), paged by ``@odata.nextLink``.

    Auth is a bearer token of the client-credentials flow (``ClientCredentials``);
    a 429 waits ``Retry-After``. userName is the userPrincipalName, active is
    ``accountEnabled``.
    """

    def __init__(self, client: HttpClient, *, name: str = "graph", page_size: int = 999) -> None:
        self.client = client
        self.name = name
        self.page_size = page_size

    def _pages(self, path: str, select: str) -> Iterator[Mapping[str, Any]]:
        url: str | None = path
        params: dict[str, Any] | None = {"$select": select, "$top": self.page_size}
        while url is not None:
            page = self.client.get_json(url, params)
            yield from _items(page.get("value", []), path)
            nxt = page.get("@odata.nextLink")
            url, params = (str(nxt), None) if nxt else (None, None)

    def users(self) -> Iterator[UpstreamUser]:
        for r in self._pages("/v1.0/users", ",".join(GRAPH_USER_FIELDS)):
            yield UpstreamUser(
                id=str(r["id"]),
                user_name=str(r["userPrincipalName"]),
                active=bool(r.get("accountEnabled", True)),
                display_name=_opt(r.get("displayName")),
                given_name=_opt(r.get("givenName")),
                family_name=_opt(r.get("surname")),
                emails=_unique([r.get("mail"), *(r.get("otherMails") or [])]),
            )

    def groups(self) -> Iterator[UpstreamGroup]:
        for r in self._pages("/v1.0/groups", "id,displayName"):
            gid = str(r["id"])
            path = f"/v1.0/groups/{quote(gid, safe='')}/members/microsoft.graph.user"
            members = frozenset(str(m["id"]) for m in self._pages(path, "id"))
            yield UpstreamGroup(gid, str(r["displayName"]), members)
