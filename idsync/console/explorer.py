"""Layer: app. The access explorer: "can this person do X on R in workspace W?", answered
by the admin API's own explain (``idsync.admin_api.access_routes.explain``, what
``POST /api/v1/explain`` runs) and shown in words (``idsync.console.words``).

A plain GET form, so a question is a link one can share; with htmx the answer replaces
the result panel only. The person may be named by id or by userName.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from idsync.admin_api.access_routes import explain
from idsync.admin_api.schemas import ExplainIn, ResourceRefIn
from idsync.console.context import Console, identity_of, wants_fragment
from idsync.console.sessions import ConsoleSession
from idsync.console.words import explanation_view
from models.access.errors import ValidationError as AccessValidationError
from models.access.grants import (
    LEGACY_ACTIONS,
    LEGACY_RESOURCE_TYPES,
    REF_TYPE_TO_SCOPE,
    V2_GRANT_NAMES,
)
from models.db.config_errors import ConfigError
from models.db.config_tables import ConfigWorkspace
from models.db.reads import reading
from scim.listing import SearchParams, search
from scim.schemas import USER_RESOURCE
from scim.users import groups_of

FIELDS = ("user", "workspace", "grant", "resource_type", "resource_id", "space_id")
GRANT_CHOICES = sorted(V2_GRANT_NAMES | set(LEGACY_ACTIONS))
RESOURCE_TYPES = sorted(set(REF_TYPE_TO_SCOPE) | set(LEGACY_RESOURCE_TYPES))


def user_id_of(console: Console, org_id: str, named: str) -> str:
    """A userName names its user (ids are tried first: explain takes ids)."""
    with reading(console.db) as conn:
        for attribute in ("id", "userName"):
            params = SearchParams(filter=f"{attribute} eq {json.dumps(named)}", count=1)
            found = search(conn, USER_RESOURCE, org_id, params, default_count=1, max_results=1)[1]
            if found:
                return found[0].id
    return named


def workspaces_of(console: Console, org_id: str) -> list[tuple[str, str]]:
    with console.db.read() as s:
        rows = s.execute(
            select(ConfigWorkspace.id, ConfigWorkspace.name)
            .where(ConfigWorkspace.org_id == org_id)
            .order_by(ConfigWorkspace.id)
        ).all()
    return [(ws_id, name or ws_id) for ws_id, name in rows]


def answer(console: Console, session: ConsoleSession, q: dict[str, str]) -> dict[str, Any]:
    """``{"result": explain's answer in words}`` or ``{"error": (field, message)}``."""
    resource = None
    if q["resource_type"]:
        resource = ResourceRefIn(
            type=q["resource_type"], id=q["resource_id"] or None, space_id=q["space_id"] or None
        )
    try:
        body = ExplainIn(
            user=user_id_of(console, session.org_id, q["user"]),
            workspace=q["workspace"],
            grant=q["grant"],
            resource=resource,
        )
        explained = explain(body, identity_of(session), console.db)
        with console.db.read() as s:
            names = dict(groups_of(s, [body.user]).get(body.user, []))
    except (ConfigError, AccessValidationError) as exc:  # the API's 422s, naming the field
        return {"error": (exc.field, exc.message)}
    except ValidationError as exc:
        first = exc.errors()[0]
        return {"error": (".".join(str(p) for p in first["loc"]), first["msg"])}
    return {"result": explanation_view(explained, names)}


async def explorer(request: Request, console: Console, session: ConsoleSession) -> Response:
    q = {name: request.query_params.get(name, "").strip()[:512] for name in FIELDS}
    asked = bool(q["user"] and q["workspace"] and q["grant"])
    outcome: dict[str, Any] = {}
    if asked:
        outcome = await run_in_threadpool(answer, console, session, q)
    elif any(q.values()):
        missing = [name for name in ("user", "workspace", "grant") if not q[name]]
        outcome = {"error": (missing[0], "required to ask the question")}
    workspaces = await run_in_threadpool(workspaces_of, console, session.org_id)
    partial = wants_fragment(request)
    return console.render(
        request,
        "_explanation.html" if partial else "explorer.html",
        title="Access explorer",
        session=session,
        q=q,
        workspaces=workspaces,
        grants=GRANT_CHOICES,
        resource_types=RESOURCE_TYPES,
        **outcome,
    )
