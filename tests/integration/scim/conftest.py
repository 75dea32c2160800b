"""A live app (in-process ASGI) per backend, with two organizations and their tokens."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from idsync.app import create_app
from models.db.database import Database
from models.db.tokens import create_scim_token, get_or_create_org
from tests.support.scim_client import Orgs, Scim, make_settings


@pytest.fixture
def orgs(database: Database) -> Iterator[Orgs]:
    with database.write() as session:
        org_a = get_or_create_org(session, "acme")
        org_b = get_or_create_org(session, "globex")
        token_a = create_scim_token(session, org_a, "test")
        token_b = create_scim_token(session, org_b, "test")
        ids = (org_a.id, org_b.id)
    app = create_app(make_settings(), db=database)
    with TestClient(app, base_url="http://idsync.test") as client:
        yield Orgs(Scim(client, token_a, ids[0]), Scim(client, token_b, ids[1]), database)


@pytest.fixture
def scim(orgs: Orgs) -> Scim:
    return orgs.a
