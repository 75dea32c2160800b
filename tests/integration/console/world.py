"""Two organizations for the console tests, made through the SCIM and admin APIs: acme
(ada in group analysts, which holds editor in workspace marketing; bob in no group; a
page's worth of other people) and globex (eve, workspace vault), each with an admin key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from models.db.admin_keys import create_admin_key
from models.db.database import Database
from models.db.tokens import create_scim_token, get_or_create_org
from tests.support.scim_client import group_body, user_body

EXTRA_PEOPLE = 30  # more than a page (25)


class Client(Protocol):
    def post(self, url: str, *, json: Any = ..., headers: Any = ...) -> Any: ...


@dataclass(frozen=True)
class World:
    acme_key: str
    globex_key: str
    acme_id: str
    globex_id: str
    ada: str
    bob: str
    eve: str
    analysts: str
    acme_scim: str


def post(client: Client, path: str, credential: str, body: dict[str, Any]) -> dict[str, Any]:
    content = "application/scim+json" if path.startswith("/scim/") else "application/json"
    resp = client.post(
        path,
        json=body,
        headers={"Authorization": f"Bearer {credential}", "Content-Type": content},
    )
    assert resp.status_code == 201, resp.text
    result: dict[str, Any] = resp.json()
    return result


def build_world(db: Database, client: Client) -> World:
    with db.write() as s:
        acme = get_or_create_org(s, "acme")
        globex = get_or_create_org(s, "globex")
        keys = (create_admin_key(s, acme, "console"), create_admin_key(s, globex, "console"))
        tokens = (create_scim_token(s, acme, "t"), create_scim_token(s, globex, "t"))
        ids = (acme.id, globex.id)
    acme_scim, globex_scim = tokens

    def person(token: str, user_name: str, display: str) -> str:
        return str(
            post(client, "/scim/v2/Users", token, user_body(user_name, displayName=display))["id"]
        )

    ada = person(acme_scim, "ada@acme.test", "Ada Lovelace")
    bob = person(acme_scim, "bob@acme.test", "Bob Builder")
    for n in range(EXTRA_PEOPLE):
        person(acme_scim, f"person{n:02d}@acme.test", f"Person {n:02d}")
    eve = person(globex_scim, "eve@globex.test", "Eve Globex")
    analysts = str(post(client, "/scim/v2/Groups", acme_scim, group_body("analysts", [ada]))["id"])
    post(client, "/api/v1/workspaces", keys[0], {"id": "marketing", "name": "Marketing"})
    post(
        client,
        "/api/v1/bindings/roles",
        keys[0],
        {"group_id": analysts, "workspace_id": "marketing", "role_id": "editor"},
    )
    post(client, "/api/v1/workspaces", keys[1], {"id": "vault", "name": "Vault"})
    return World(keys[0], keys[1], ids[0], ids[1], ada, bob, eve, analysts, acme_scim)
