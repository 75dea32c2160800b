"""Layer: worker. Turn an organization's committed change rows into events (the transactional
outbox read a second time, by its own cursor).

One transaction per run, on one snapshot: the organization's revision ``S`` is read first,
every change row in ``(cursor, S]`` becomes its directory events (``worker.events.directory``),
then every user those rows touched (members of the groups a configuration change names;
everyone for ``*``) has their effective permissions evaluated at ``S`` and compared with
what was last announced (``event_permission_state``): each workspace that differs is one
``permissions.changed`` event at revision ``S``. Events, the new permission state and the
cursor commit together, so a run that dies or fails leaves nothing behind and the next
run does the same work again: each change row yields its events exactly once, in revision
order, and a write that rolled back has no change row and so no event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.cache.layout import ALL_GROUPS
from models.db.base import utcnow
from models.db.config_loader import load_org_config, load_user_inputs, users_in_groups
from models.db.database import Database
from models.db.event_log import append, ensure_cursor, lock_cursor, serial_transaction
from models.db.event_tables import PermissionState
from models.db.tables import Change, Group, GroupMember, Organization, User
from worker.events.directory import PERMISSIONS_CHANGED, ChangeFacts, EventDraft, directory_events
from worker.events.permissions import PermissionReader, diff

PAGE: Final = 2_000
MAX_CHANGES: Final = 10_000
"""Change rows one run turns into events at most (a backlog is worked off run by run, each
its own transaction, so a run stays well inside the task time limits)."""


@dataclass
class DeriveReport:
    changes: int = 0
    events: int = 0
    permission_events: int = 0
    revision: int = 0
    seq: int = 0
    more: bool = False
    types: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        out = dict(vars(self))
        out["types"] = sorted(self.types)
        return out


def _changes(session: Session, org_id: str, after: int, upto: int, limit: int) -> list[ChangeFacts]:
    out: list[ChangeFacts] = []
    while after < upto and len(out) < limit:
        rows = session.execute(
            select(Change)
            .where(Change.org_id == org_id, Change.revision > after, Change.revision <= upto)
            .order_by(Change.revision)
            .limit(min(PAGE, limit - len(out)))
        ).scalars()
        page = [
            ChangeFacts(
                revision=int(r.revision),
                kind=r.kind,
                resource_id=r.resource_id,
                user_ids=list(r.user_ids or ()),
                group_ids=list(r.group_ids or ()),
                revoked_user_ids=r.revoked_user_ids,
                actor=r.actor,
                request_id=r.request_id,
                created_at=r.created_at,
            )
            for r in rows
        ]
        if not page:
            break
        out += page
        after = page[-1].revision
    return out


def _user_docs(session: Session, org_id: str, ids: set[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    chunk = sorted(ids)
    for start in range(0, len(chunk), 1000):
        for u in session.execute(
            select(User.id, User.user_name, User.external_id, User.active).where(
                User.org_id == org_id, User.id.in_(chunk[start : start + 1000])
            )
        ):
            out[u.id] = {
                "id": u.id,
                "userName": u.user_name,
                "externalId": u.external_id,
                "active": u.active,
            }
    return out


def _group_docs(session: Session, org_id: str, ids: set[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    chunk = sorted(ids - {ALL_GROUPS})
    for start in range(0, len(chunk), 1000):
        for g in session.execute(
            select(Group.id, Group.display_name, Group.external_id).where(
                Group.org_id == org_id, Group.id.in_(chunk[start : start + 1000])
            )
        ):
            out[g.id] = {"id": g.id, "displayName": g.display_name, "externalId": g.external_id}
    return out


def _affected_users(session: Session, org_id: str, changes: Iterable[ChangeFacts]) -> set[str]:
    users: set[str] = set()
    config_groups: set[str] = set()
    for ch in changes:
        users.update(ch.user_ids)
        if ch.kind.startswith("config."):
            config_groups.update(ch.group_ids)
    if ALL_GROUPS in config_groups:
        users.update(session.scalars(select(User.id).where(User.org_id == org_id)))
    elif config_groups:
        users |= users_in_groups(session, org_id, config_groups)
    return users


def _permission_events(
    session: Session, org_id: str, users: set[str], revision: int, at: Any
) -> list[EventDraft]:
    if not users:
        return []
    config = load_org_config(session, org_id)
    inputs = load_user_inputs(session, org_id, users)
    reader = PermissionReader(config)
    states = {
        s.user_id: s
        for chunk_start in range(0, len(users), 1000)
        for s in session.scalars(
            select(PermissionState).where(
                PermissionState.org_id == org_id,
                PermissionState.user_id.in_(sorted(users)[chunk_start : chunk_start + 1000]),
            )
        )
    }
    out: list[EventDraft] = []
    for user_id in sorted(users):
        now = reader.of(inputs.get(user_id))
        state = states.get(user_id)
        before = state.permissions if state is not None else {}
        for ws, granted, revoked in diff(before, now):
            data = {"user_id": user_id, "workspace_id": ws, "granted": granted, "revoked": revoked}
            out.append(EventDraft(PERMISSIONS_CHANGED, revision, at, data))
        if state is None and now:
            session.add(
                PermissionState(org_id=org_id, user_id=user_id, permissions=now, revision=revision)
            )
        elif state is not None and not now:
            session.delete(state)
        elif state is not None and now != before:
            state.permissions, state.revision = now, revision
    return out


def derive(database: Database, org_id: str, limit: int = MAX_CHANGES) -> DeriveReport:
    """Append the events of the change rows past the organization's event cursor (at most
    ``limit`` of them: ``report.more`` when some are left).

    Permission events carry the revision of the last change row derived; after a backlog
    cut into runs, the state they announce may already include later changes of the
    snapshot (whose own runs then find nothing left to announce)."""
    report = DeriveReport()
    ensure_cursor(database, org_id)
    with serial_transaction(database) as session:
        cursor = lock_cursor(session, org_id)
        top = int(
            session.scalar(select(Organization.revision).where(Organization.id == org_id)) or 0
        )
        report.revision, report.seq = int(cursor.revision), int(cursor.seq)
        if top <= cursor.revision:
            return report
        changes = _changes(session, org_id, int(cursor.revision), top, limit)
        if changes and changes[-1].revision < top:  # a backlog: the rest in the next run
            report.more, top = True, changes[-1].revision
        user_ids = {u for ch in changes for u in ch.user_ids} | {
            ch.resource_id for ch in changes if ch.kind.startswith("user.") and ch.resource_id
        }
        group_ids = {g for ch in changes for g in ch.group_ids} | {
            ch.resource_id for ch in changes if ch.kind.startswith("group.") and ch.resource_id
        }
        users = _user_docs(session, org_id, user_ids)
        groups = _group_docs(session, org_id, group_ids)

        def members_now(group_id: str) -> frozenset[str]:
            return frozenset(
                session.scalars(select(GroupMember.user_id).where(GroupMember.group_id == group_id))
            )

        drafts = [d for ch in changes for d in directory_events(ch, users, groups, members_now)]
        at = changes[-1].created_at if changes else utcnow()
        affected = _affected_users(session, org_id, changes)
        perms = _permission_events(session, org_id, affected, top, at)
        drafts += perms
        seq = append(session, cursor, [(d.type, d.revision, d.occurred_at, d.data) for d in drafts])
        cursor.revision = top
        report.changes, report.events, report.permission_events = (
            len(changes),
            len(drafts),
            len(perms),
        )
        report.revision, report.seq = top, seq
        report.types = {d.type for d in drafts}
    return report
