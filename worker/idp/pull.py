"""IdP pull: read users and groups upstream, reconcile through the SCIM write path.

The whole upstream directory is read first; if any page fails (after the client's
retries) nothing is written and nothing is deactivated. Then every difference is
applied through ``scim.users`` / ``scim.groups`` (one transaction each, each with its
change row, so the cache pipeline sees pulled changes exactly like pushed ones), with
``actor = "idp-pull:<source>"``. Local users are matched by ``externalId`` = upstream
id (then by userName, adopting a pushed user). With ``deactivate_missing``, active
local users that carry an ``externalId`` absent upstream are deactivated.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select

from idsync.settings import Settings
from models.db.database import Database
from models.db.tables import Group, GroupMember, User
from scim.context import ScimContext
from scim.groups import create_group, replace_group
from scim.users import create_user, patch_user, replace_user
from worker.idp.client import HttpClient, IdpError
from worker.idp.sources import ScimSource, Source, UpstreamGroup, UpstreamUser

log = logging.getLogger("idsync.idp")
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@dataclass
class PullReport:
    source: str
    complete: bool = False
    error: str | None = None
    upstream_users: int = 0
    upstream_groups: int = 0
    users_created: int = 0
    users_updated: int = 0
    users_deactivated: int = 0
    groups_created: int = 0
    groups_updated: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _user_body(u: UpstreamUser) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schemas": [USER],
        "userName": u.user_name,
        "externalId": u.id,
        "active": u.active,
    }
    if u.display_name:
        body["displayName"] = u.display_name
    return body


def pull(
    database: Database,
    org_id: str,
    source: Source,
    *,
    deactivate_missing: bool = False,
    base_url: str = "http://idsync/scim/v2",
) -> PullReport:
    report = PullReport(source.name)
    try:
        users = list(source.users())
        groups = list(source.groups())
    except (IdpError, KeyError, ValueError, TypeError) as exc:
        report.error = str(exc)
        log.warning("idp pull read failed; nothing applied", extra={"org_id": org_id})
        return report
    report.complete = True
    report.upstream_users, report.upstream_groups = len(users), len(groups)
    ctx = ScimContext(org_id, actor=f"idp-pull:{source.name}", base_url=base_url)
    local_ids = _apply_users(database, ctx, users, report)
    _apply_groups(database, ctx, groups, local_ids, report)
    if deactivate_missing:
        _deactivate_missing(database, ctx, {u.id for u in users}, report)
    return report


def _apply_users(
    database: Database, ctx: ScimContext, users: list[UpstreamUser], report: PullReport
) -> dict[str, str]:
    with database.read() as s:
        rows = s.execute(
            select(
                User.id,
                User.external_id,
                User.user_name_norm,
                User.user_name,
                User.active,
                User.display_name,
            ).where(User.org_id == ctx.org_id)
        ).all()
    by_ext = {r.external_id: r for r in rows if r.external_id}
    by_name = {r.user_name_norm: r for r in rows}
    mapping: dict[str, str] = {}
    for u in users:
        row = by_ext.get(u.id) or by_name.get(u.user_name.lower())
        with database.write() as s:
            if row is None:
                mapping[u.id] = create_user(s, ctx, _user_body(u)).id
                report.users_created += 1
                continue
            mapping[u.id] = row.id
            same = (
                row.external_id == u.id
                and row.user_name == u.user_name
                and row.active == u.active
                and row.display_name == u.display_name
            )
            if not same:
                replace_user(s, ctx, row.id, _user_body(u), None)
                report.users_updated += 1
    return mapping


def _apply_groups(
    database: Database,
    ctx: ScimContext,
    groups: list[UpstreamGroup],
    local_ids: dict[str, str],
    report: PullReport,
) -> None:
    with database.read() as s:
        rows = s.execute(
            select(Group.id, Group.external_id, Group.display_name_norm, Group.display_name).where(
                Group.org_id == ctx.org_id
            )
        ).all()
        members: dict[str, set[str]] = {}
        for gid, uid in s.execute(
            select(GroupMember.group_id, GroupMember.user_id).where(
                GroupMember.org_id == ctx.org_id
            )
        ):
            members.setdefault(gid, set()).add(uid)
    by_ext = {r.external_id: r for r in rows if r.external_id}
    by_name = {r.display_name_norm: r for r in rows}
    for g in groups:
        wanted = sorted(local_ids[m] for m in g.member_ids if m in local_ids)
        body = {
            "schemas": [GROUP],
            "displayName": g.display_name,
            "externalId": g.id,
            "members": [{"value": m} for m in wanted],
        }
        row = by_ext.get(g.id) or by_name.get(g.display_name.lower())
        with database.write() as s:
            if row is None:
                create_group(s, ctx, body)
                report.groups_created += 1
            elif (
                row.external_id != g.id
                or row.display_name != g.display_name
                or members.get(row.id, set()) != set(wanted)
            ):
                replace_group(s, ctx, row.id, body, None)
                report.groups_updated += 1


def _deactivate_missing(
    database: Database, ctx: ScimContext, upstream: set[str], report: PullReport
) -> None:
    with database.read() as s:
        stale = [
            uid
            for uid, ext in s.execute(
                select(User.id, User.external_id).where(
                    User.org_id == ctx.org_id, User.active.is_(True), User.external_id.is_not(None)
                )
            )
            if ext not in upstream
        ]
    body = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": False}]}
    for uid in stale:
        with database.write() as s:
            patch_user(s, ctx, uid, body, None)
        report.users_deactivated += 1


def pull_from_settings(settings: Settings, database: Database) -> dict[str, Any]:
    if not settings.idp_scim_url or not settings.idp_org:
        return {"skipped": "IDSYNC_IDP_SCIM_URL / IDSYNC_IDP_ORG not set"}
    client = HttpClient(settings.idp_scim_url, settings.idp_token)
    try:
        report = pull(
            database,
            settings.idp_org,
            ScimSource(client),
            deactivate_missing=settings.idp_deactivate_missing,
        )
    finally:
        client.close()
    log.info("idp pull", extra=report.as_dict())
    return report.as_dict()
