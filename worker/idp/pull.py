"""Layer: worker. IdP pull: read users and groups upstream, reconcile through the SCIM write path.

The whole upstream directory is read first; if any page fails (after the client's
retries) nothing is written and nothing is deactivated. Then every difference is
applied through ``scim.users`` / ``scim.groups`` (one transaction each, each with its
change row, so the cache pipeline sees pulled changes exactly like pushed ones), with
``actor = "idp-pull:<source>"``. Local users are matched by ``externalId`` = upstream
id (then by userName, adopting a pushed user). With ``deactivate_missing``, active
local users that carry an ``externalId`` absent upstream are deactivated. With
``dry_run`` the same comparison runs and is counted, but nothing is written.

Every source (SCIM 2.0, Okta, Microsoft Graph: ``worker.idp.sources``) yields the same
values, so they all produce the same SCIM documents and reconcile through this one
write path. ``worker.idp.upstreams`` opens the configured one (an ``idp_connections`` row
or the IDSYNC_IDP_* environment variables; docs/worker.md).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy import select

from models.db.database import Database
from models.db.tables import Group, GroupMember, User
from scim.context import ScimContext
from scim.groups import create_group, replace_group
from scim.normalize import normalize_resource
from scim.schemas import USER_RESOURCE
from scim.users import create_user, patch_user, replace_user, with_default_active
from worker.idp.client import IdpError
from worker.idp.runs import PullReport
from worker.idp.sources import Source, UpstreamGroup, UpstreamUser

log = logging.getLogger("idsync.idp")
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _user_body(u: UpstreamUser) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schemas": [USER],
        "userName": u.user_name,
        "externalId": u.id,
        "active": u.active,
    }
    if u.display_name:
        body["displayName"] = u.display_name
    name = {k: v for k, v in (("givenName", u.given_name), ("familyName", u.family_name)) if v}
    if name:
        body["name"] = name
    if u.emails:
        body["emails"] = [
            {"value": e, "type": "work", "primary": i == 0} for i, e in enumerate(u.emails)
        ]
    return body


MANAGED: Final = ("userName", "externalId", "active", "displayName", "name", "emails")
"""User attributes the pull owns; others (set by a SCIM push) are not compared."""


def _managed(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: doc.get(k) for k in MANAGED}


def _wanted(u: UpstreamUser) -> dict[str, Any]:
    """The stored form of the pulled user's document (what ``replace_user`` would keep)."""
    normalized = normalize_resource(_user_body(u), USER_RESOURCE, mode="replace")
    return _managed(with_default_active(normalized.document))


def pull(
    database: Database,
    org_id: str,
    source: Source,
    *,
    deactivate_missing: bool = False,
    dry_run: bool = False,
    base_url: str = "http://idsync/scim/v2",
) -> PullReport:
    report = PullReport(source.name, dry_run=dry_run)
    try:
        users = list(source.users())
        groups = list(source.groups())
    except IdpError as exc:
        report.error, report.upstream_status, report.transient = str(exc), exc.status, exc.transient
        report.retry_after_s = exc.retry_after_s
        log.warning("idp pull read failed; nothing applied", extra={"org_id": org_id})
        return report
    except (KeyError, ValueError, TypeError) as exc:
        report.error = f"unexpected upstream data: {type(exc).__name__}: {exc}"
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
                User.attrs,
            ).where(User.org_id == ctx.org_id)
        ).all()
    by_ext = {r.external_id: r for r in rows if r.external_id}
    by_name = {r.user_name_norm: r for r in rows}
    mapping: dict[str, str] = {}
    for u in users:
        row = by_ext.get(u.id) or by_name.get(u.user_name.lower())
        if row is None:
            report.users_created += 1
            if report.dry_run:
                mapping[u.id] = f"new:{u.id}"  # stands for the user in membership counts
                continue
            with database.write() as s:
                mapping[u.id] = create_user(s, ctx, _user_body(u)).id
            continue
        mapping[u.id] = row.id
        if _managed(row.attrs or {}) != _wanted(u):
            report.users_updated += 1
            if not report.dry_run:
                with database.write() as s:
                    replace_user(s, ctx, row.id, _user_body(u), None)
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
        if row is None:
            report.groups_created += 1
            report.members_added += len(wanted)
            if not report.dry_run:
                with database.write() as s:
                    create_group(s, ctx, body)
            continue
        had = members.get(row.id, set())
        if row.external_id != g.id or row.display_name != g.display_name or had != set(wanted):
            report.groups_updated += 1
            report.members_added += len(set(wanted) - had)
            report.members_removed += len(had - set(wanted))
            if not report.dry_run:
                with database.write() as s:
                    replace_group(s, ctx, row.id, body, None)


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
        report.users_deactivated += 1
        if not report.dry_run:
            with database.write() as s:
                patch_user(s, ctx, uid, body, None)
