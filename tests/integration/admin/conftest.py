"""Two organizations with admin keys and SCIM tokens, on each backend."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from idsync.app import create_app
from models.db.admin_keys import create_admin_key
from models.db.database import Database
from models.db.tables import Change, Group, GroupMember, User
from models.db.tokens import create_scim_token, get_or_create_org
from tests.support.scim_client import Scim, make_settings


@dataclass
class Api:
    """An admin API client bound to one organization's key."""

    client: TestClient
    key: str
    org_id: str
    db: Database
    scim: Scim

    def _h(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(f"/api/v1{path}", headers=self._h(), **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.client.post(f"/api/v1{path}", json=body, headers=self._h(), **kw)

    def put(self, path: str, body: Any, **kw: Any) -> Any:
        return self.client.put(f"/api/v1{path}", json=body, headers=self._h(), **kw)

    def patch(self, path: str, body: Any, **kw: Any) -> Any:
        return self.client.patch(f"/api/v1{path}", json=body, headers=self._h(), **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.client.delete(f"/api/v1{path}", headers=self._h(), **kw)

    def ok(self, method: str, path: str, body: Any = None, status: int | None = None) -> Any:
        fn = getattr(self, method)
        resp = fn(path) if body is None and method in ("get", "delete") else fn(path, body)
        expected = status or {"post": 201, "delete": 204}.get(method, 200)
        assert resp.status_code == expected, resp.text
        return None if resp.status_code == 204 else resp.json()

    # --- identities (written directly: the SCIM layer is tested elsewhere) ------------

    def group(self, name: str, external_id: str | None = None, members: list[str] = ()) -> str:  # type: ignore[assignment]
        with self.db.write() as s:
            g = Group(
                org_id=self.org_id,
                display_name=name,
                display_name_norm=name.lower(),
                external_id=external_id,
                attrs={"displayName": name},
            )
            s.add(g)
            s.flush()
            for uid in members:
                s.add(GroupMember(group_id=g.id, user_id=uid, org_id=self.org_id))
            return g.id

    def user(self, name: str, active: bool = True) -> str:
        with self.db.write() as s:
            u = User(org_id=self.org_id, user_name=name, user_name_norm=name.lower(), active=active)
            s.add(u)
            s.flush()
            return u.id

    def changes(self) -> list[Change]:
        with self.db.read() as s:
            return list(
                s.scalars(
                    select(Change).where(Change.org_id == self.org_id).order_by(Change.revision)
                )
            )


@dataclass
class Two:
    a: Api
    b: Api

    def change_count(self) -> int:
        with self.a.db.read() as s:
            return int(s.scalar(select(func.count()).select_from(Change)) or 0)


@pytest.fixture
def two(database: Database) -> Iterator[Two]:
    with database.write() as s:
        org_a = get_or_create_org(s, "acme")
        org_b = get_or_create_org(s, "globex")
        keys = (create_admin_key(s, org_a, "test"), create_admin_key(s, org_b, "test"))
        tokens = (create_scim_token(s, org_a, "t"), create_scim_token(s, org_b, "t"))
        ids = (org_a.id, org_b.id)
    app = create_app(make_settings(), db=database)
    with TestClient(app, base_url="http://idsync.test") as client:
        yield Two(
            Api(client, keys[0], ids[0], database, Scim(client, tokens[0], ids[0])),
            Api(client, keys[1], ids[1], database, Scim(client, tokens[1], ids[1])),
        )


@pytest.fixture
def api(two: Two) -> Api:
    return two.a
