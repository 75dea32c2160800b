"""A SCIM test client bound to one organization, and request-body builders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from models.db.database import Database
from models.db.tables import Change
from models.settings import Settings

SCIM = "application/scim+json"


@dataclass
class Scim:
    """A SCIM client bound to one organization's token."""

    client: TestClient
    token: str
    org_id: str

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": SCIM}
        headers.update(extra or {})
        return headers

    def get(self, path: str, **kw: Any) -> Any:
        headers = self._headers(kw.pop("headers", None))
        return self.client.get(f"/scim/v2{path}", headers=headers, **kw)

    def post(self, path: str, body: Any, **kw: Any) -> Any:
        headers = self._headers(kw.pop("headers", None))
        return self.client.post(f"/scim/v2{path}", json=body, headers=headers, **kw)

    def put(self, path: str, body: Any, **kw: Any) -> Any:
        headers = self._headers(kw.pop("headers", None))
        return self.client.put(f"/scim/v2{path}", json=body, headers=headers, **kw)

    def patch(self, path: str, body: Any, **kw: Any) -> Any:
        headers = self._headers(kw.pop("headers", None))
        return self.client.patch(f"/scim/v2{path}", json=body, headers=headers, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        headers = self._headers(kw.pop("headers", None))
        return self.client.delete(f"/scim/v2{path}", headers=headers, **kw)

    def ops(self, *operations: dict[str, Any]) -> dict[str, Any]:
        return {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": list(operations),
        }


@dataclass
class Orgs:
    a: Scim
    b: Scim
    db: Database

    def change_count(self) -> int:
        with self.db.read() as session:
            return int(session.scalar(select(func.count()).select_from(Change)) or 0)


def make_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)


def user_body(user_name: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"value": user_name, "type": "work", "primary": True}],
        "active": True,
    }
    body.update(extra)
    return body


def group_body(name: str, members: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": name,
        "members": [{"value": m} for m in (members or [])],
    }
    body.update(extra)
    return body
