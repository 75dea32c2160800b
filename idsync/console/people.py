"""Layer: app. People: a search by userName, displayName or email (server side, paged,
through the SCIM list query, ``scim.listing.search``) and a person's page: their groups
and, per workspace, their effective permissions with provenance — which group holds each
role and grant, through which binding, made by hand or by which mapping rule — as the
reference evaluator computes them for ``explain`` (``models.access``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from idsync.console.context import Console, wants_fragment
from idsync.console.sessions import ConsoleSession
from idsync.console.words import binding_source
from models.access.access_model import AccessModel
from models.access.evaluator import ALL
from models.db.config_loader import load_org_config, load_user_inputs
from models.db.reads import reading
from scim.errors import ScimError
from scim.listing import SearchParams, search
from scim.schemas import USER_RESOURCE
from scim.users import groups_of, load_user

PAGE_SIZE = 25
MAX_QUERY = 200
SEARCHED = ("userName", "displayName", "emails.value")


def search_filter(query: str) -> str | None:
    """The SCIM filter of a search box: the text in any of ``SEARCHED`` (a JSON string is
    a SCIM string literal, so quotes and backslashes in the text stay text)."""
    text = query.strip()[:MAX_QUERY]
    if not text:
        return None
    literal = json.dumps(text)
    return " or ".join(f"{attr} co {literal}" for attr in SEARCHED)


@dataclass(frozen=True)
class PersonRow:
    id: str
    user_name: str
    display_name: str
    email: str
    active: bool


def _row(user_id: str, attrs: dict[str, Any]) -> PersonRow:
    emails = attrs.get("emails") or []
    primary = next((e for e in emails if e.get("primary")), emails[0] if emails else {})
    return PersonRow(
        id=user_id,
        user_name=str(attrs.get("userName", "")),
        display_name=str(attrs.get("displayName") or ""),
        email=str(primary.get("value") or ""),
        active=bool(attrs.get("active", True)),
    )


def find_people(
    console: Console, org_id: str, query: str, page: int
) -> tuple[int, list[PersonRow]]:
    params = SearchParams(
        filter=search_filter(query),
        start_index=(page - 1) * PAGE_SIZE + 1,
        count=PAGE_SIZE,
        sort_by="userName",
    )
    with reading(console.db) as conn:
        total, rows, _ = search(
            conn,
            USER_RESOURCE,
            org_id,
            params,
            default_count=PAGE_SIZE,
            max_results=PAGE_SIZE,
            totals=console.totals,
        )
    return total, [_row(r.id, r.attrs) for r in rows]


def _page_number(raw: str | None) -> int:
    try:
        return max(1, min(int(raw or "1"), 100_000))
    except ValueError:
        return 1


async def people(request: Request, console: Console, session: ConsoleSession) -> Response:
    query = request.query_params.get("q", "")
    page = _page_number(request.query_params.get("page"))
    total, rows = await run_in_threadpool(find_people, console, session.org_id, query, page)
    pages = max(1, -(-total // PAGE_SIZE))
    context: dict[str, Any] = {
        "title": "People",
        "session": session,
        "q": query,
        "page": page,
        "pages": pages,
        "total": total,
        "rows": rows,
    }
    partial = wants_fragment(request)
    return console.render(request, "_people_results.html" if partial else "people.html", **context)


@dataclass(frozen=True)
class GrantLine:
    grant: str
    on: str
    limited: bool
    via: list[str]


@dataclass(frozen=True)
class WorkspaceAccessView:
    workspace_id: str
    name: str
    roles: list[str]
    is_admin: bool
    bindings: list[tuple[str, str, str]]
    """(group, role, provenance in words)."""
    grants: list[GrantLine]
    legacy_role: str | None
    legacy_actions: list[str]
    visible_spaces: str
    ignored: list[str]


def person_view(console: Console, org_id: str, user_id: str) -> dict[str, Any]:
    """The person, their groups and their access per workspace (404: not in this
    organization)."""
    with console.db.read() as s:
        try:
            row = load_user(s, org_id, user_id)
        except ScimError:
            raise HTTPException(404, "no such person in this organization") from None
        person = _row(row.id, row.attrs)
        groups = groups_of(s, [user_id]).get(user_id, [])
        users = load_user_inputs(s, org_id, [user_id])
        config = load_org_config(s, org_id)
    names = dict(groups)
    model = AccessModel(config)
    user = users.get(user_id)
    workspaces: list[WorkspaceAccessView] = []
    for ws in config.workspaces:
        access = model.workspace_access(user, ws.id)
        if access is None or not access.has_role:
            continue
        what = model.what_can(user, ws.id)
        bindings = [
            (names.get(g.group_id, g.group_id), b.role_id, binding_source(b.source))
            for g in access.groups
            for b in g.bindings
        ]
        lines: dict[tuple[str, str, bool], list[str]] = {}
        for g in access.groups:
            for e in g.grants:
                on = "workspace" if e.scope == "workspace" else f"{e.scope}:{e.resource_id}"
                via = lines.setdefault((e.name, on, e.limit is not None), [])
                for role_id, source in e.provenance:
                    via.append(
                        f"{names.get(g.group_id, g.group_id)} → {role_id} "
                        f"({binding_source(source)})"
                    )
        vis = access.visible_spaces
        workspaces.append(
            WorkspaceAccessView(
                workspace_id=ws.id,
                name=ws.name or ws.id,
                roles=list(what.roles),
                is_admin=what.is_admin,
                bindings=sorted(bindings),
                grants=[
                    GrantLine(grant, on, limited, sorted(set(via)))
                    for (grant, on, limited), via in sorted(lines.items())
                ],
                legacy_role=what.legacy_role,
                legacy_actions=list(what.legacy_actions),
                visible_spaces="every Space" if vis == ALL else ", ".join(sorted(vis)) or "none",
                ignored=[
                    f"{names.get(i.binding.group_id, i.binding.group_id)} → "
                    f"{i.binding.role_id}: {i.reason}"
                    for i in access.ignored
                ],
            )
        )
    return {
        "person": person,
        "active": user is not None and user.can_act,
        "groups": groups,
        "workspaces": workspaces,
        "workspace_ids": [w.id for w in config.workspaces],
    }


async def person(request: Request, console: Console, session: ConsoleSession) -> Response:
    user_id = str(request.path_params["user_id"])
    view = await run_in_threadpool(person_view, console, session.org_id, user_id)
    return console.render(
        request, "person.html", title=view["person"].user_name, session=session, **view
    )
