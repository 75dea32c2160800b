"""Layer: app. ``Authorization: Bearer <admin key>`` -> the organization every query is scoped
to."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from models.db.admin_keys import (
    AdminIdentity,
    touch_admin_key,
    verify_admin_key,
)
from models.db.config_errors import ConfigError
from models.db.database import Database

bearer = HTTPBearer(auto_error=False, description="Organization admin API key")


class UnauthorizedError(ConfigError):
    status = 401


def database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def admin_identity(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> AdminIdentity:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise UnauthorizedError("Authorization", "missing bearer admin key")
    db = database(request)
    with db.read() as session:
        identity = verify_admin_key(session, credentials.credentials)
    if identity is None:
        raise UnauthorizedError("Authorization", "unknown or revoked admin key")
    if identity.use_is_stale():  # at most one write per key per minute
        with db.write() as session:
            touch_admin_key(session, identity.key_id)
    request.state.admin = identity
    return identity


Admin = Annotated[AdminIdentity, Depends(admin_identity)]
DB = Annotated[Database, Depends(database)]
