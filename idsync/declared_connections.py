"""Layer: app. The ``connections:`` section of a declarative file (``idsync apply``): the
organization's IdP connections, each named, its credential referenced by the environment
variable that holds it (``secret_env``) and read when the file is applied, so a file kept
in git never contains it. Like the file's other sections, the list is authoritative:
connections of the organization missing from it are removed. Applying the same file with
the same credentials twice changes nothing the second time."""

from __future__ import annotations

import os
from collections.abc import Mapping

from sqlalchemy.orm import Session

from idsync.connection_inputs import ConnectionInFile, checked_spec
from models.db.config_errors import ConfigError
from models.db.idp_connections import (
    create_connection,
    find_by_name,
    list_connections,
    remove_connection,
    update_connection,
)
from models.secret_box import SecretBox, SecretKeyError
from models.settings import get_settings


def _box() -> SecretBox:
    try:
        return get_settings().secret_box()
    except SecretKeyError as exc:
        raise ConfigError("connections", str(exc)) from None


def secret_from_env(env: Mapping[str, str], name: str, field: str) -> str:
    """The secret a declarative file names by environment variable (never inlined)."""
    secret = env.get(name)
    if not secret:
        raise ConfigError(field, f"environment variable {name} is not set or empty")
    return secret


def apply_connections(
    session: Session,
    org_id: str,
    declared: list[ConnectionInFile],
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """Make the organization's connections match ``declared``; the diff lines."""
    env = os.environ if environ is None else environ
    diff: list[str] = []
    names = [d.name for d in declared]
    for dup in {n for n in names if names.count(n) > 1}:
        raise ConfigError("connections", f"the name {dup!r} is given twice")
    for i, decl in enumerate(declared):
        secret = None
        if decl.secret_env is not None:
            secret = secret_from_env(env, decl.secret_env, f"connections[{i}].secret_env")
        box = _box() if secret else None
        try:
            existing = find_by_name(session, org_id, decl.name)
            spec = checked_spec(decl.spec(), get_settings())
            if existing is None:
                create_connection(session, org_id, spec, secret, box)
                diff.append(f"+ connection {decl.name} ({decl.kind} {decl.url or 'default URL'})")
            elif update_connection(session, existing, spec, secret, box):
                diff.append(f"~ connection {decl.name}")
        except ConfigError as exc:
            raise exc.under(f"connections[{i}]") from None
    for conn in list_connections(session, org_id):
        if conn.name not in names:
            remove_connection(session, org_id, conn.id)
            diff.append(f"- connection {conn.name}")
    return diff
