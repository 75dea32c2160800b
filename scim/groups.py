"""Layer: store. Group resources and their memberships (one transaction per request).

Memberships are rows: adding or removing one member is one INSERT/DELETE plus a version
bump on the group row, whatever the group's size; concurrent PATCHes that add different
members therefore never lose each other's work.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from models.db.base import utcnow
from models.db.database import record_change
from models.db.tables import Group, GroupMember, User
from scim.context import ScimContext
from scim.errors import InvalidValue
from scim.normalize import normalize_resource
from scim.patch import apply_patch
from scim.schemas import GROUP_RESOURCE
from scim.uniqueness import flush_or_conflict
from scim.users import check_etag, check_length, load_owned


def load_group(session: Session, org_id: str, group_id: str, *, for_update: bool = False) -> Group:
    return load_owned(session, Group, org_id, group_id, for_update=for_update)


def members_of(session: Session, group_id: str) -> list[tuple[str, str | None]]:
    """(user id, display) of every member, ordered by user id."""
    rows = session.execute(
        select(GroupMember.user_id, func.coalesce(User.display_name, User.user_name))
        .join(User, User.id == GroupMember.user_id)
        .where(GroupMember.group_id == group_id)
        .order_by(GroupMember.user_id)
    ).all()
    return [(uid, display) for uid, display in rows]


def members_of_many(
    conn: Connection, group_ids: Sequence[str]
) -> dict[str, list[tuple[str, str | None]]]:
    out: dict[str, list[tuple[str, str | None]]] = {gid: [] for gid in group_ids}
    if not group_ids:
        return out
    rows = conn.execute(
        select(
            GroupMember.group_id,
            GroupMember.user_id,
            func.coalesce(User.display_name, User.user_name),
        )
        .join(User, User.id == GroupMember.user_id)
        .where(GroupMember.group_id.in_(list(group_ids)))
        .order_by(GroupMember.group_id, GroupMember.user_id)
    ).all()
    for gid, uid, display in rows:
        out[gid].append((uid, display))
    return out


def _apply_document(group: Group, doc: dict[str, Any]) -> None:
    for attr in ("displayName", "externalId"):
        check_length(attr, doc.get(attr))
    name = str(doc["displayName"])
    group.display_name = name
    group.display_name_norm = name.lower()
    external = doc.get("externalId")
    group.external_id = str(external) if external is not None else None
    group.attrs = doc


def _flush_unique(session: Session, name: str) -> None:
    flush_or_conflict(
        session, "display_name_norm", f"a group named {name!r} already exists in this organization"
    )


def _existing_users(session: Session, org_id: str, user_ids: Iterable[str]) -> list[str]:
    """The given ids, checked to be users of this organization (400 otherwise).

    The rows are locked FOR KEY SHARE until commit (PostgreSQL; SQLite writers are
    serialized anyway): a concurrent DELETE of one of these users either committed
    first, and then its row is not returned (400 below, nothing written), or waits for
    this transaction and then deletes the new membership with the user. Without the lock
    the membership INSERT's foreign key check failed under a racing DELETE (500). The
    lock does not block updates of the users (those take FOR NO KEY UPDATE).
    """
    wanted = sorted(set(user_ids))
    if not wanted:
        return []
    found: set[str] = set()
    for start in range(0, len(wanted), 1000):
        chunk = wanted[start : start + 1000]
        found.update(
            session.scalars(
                select(User.id)
                .where(User.org_id == org_id, User.id.in_(chunk))
                .order_by(User.id)
                .with_for_update(key_share=True)
            )
        )
    missing = [uid for uid in wanted if uid not in found]
    if missing:
        shown = ", ".join(missing[:5])
        raise InvalidValue(
            f"members must be users of this organization (nested groups are not supported); "
            f"unknown: {shown}{' …' if len(missing) > 5 else ''}"
        )
    return wanted


def _insert_members(session: Session, group: Group, user_ids: Sequence[str]) -> list[str]:
    """Insert memberships that do not exist yet; returns the user ids actually added."""
    if not user_ids:
        return []
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    added: list[str] = []
    for start in range(0, len(user_ids), 1000):
        chunk = user_ids[start : start + 1000]
        stmt = (
            insert(GroupMember)
            .values(
                [
                    {
                        "group_id": group.id,
                        "user_id": uid,
                        "org_id": group.org_id,
                        "created_at": utcnow(),
                    }
                    for uid in chunk
                ]
            )
            .on_conflict_do_nothing()
            .returning(GroupMember.user_id)
        )
        added.extend(session.scalars(stmt))
    return added


def _delete_members(session: Session, group: Group, user_ids: Sequence[str] | None) -> list[str]:
    """Delete the given memberships (all when None); returns the user ids removed."""
    stmt = delete(GroupMember).where(GroupMember.group_id == group.id)
    if user_ids is None:
        return list(session.scalars(stmt.returning(GroupMember.user_id)))
    removed: list[str] = []
    for start in range(0, len(user_ids), 1000):
        chunk = list(user_ids[start : start + 1000])
        removed.extend(
            session.scalars(
                stmt.where(GroupMember.user_id.in_(chunk)).returning(GroupMember.user_id)
            )
        )
    return removed


def _bump(session: Session, group: Group) -> None:
    now = utcnow()
    session.execute(
        update(Group)
        .where(Group.id == group.id)
        .values(version=Group.version + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.refresh(group, ["version", "updated_at"])


def _record(
    session: Session,
    ctx: ScimContext,
    group: Group,
    kind: str,
    user_ids: Iterable[str],
    removed: Iterable[str] = (),
) -> None:
    """The change row; ``removed``: members taken out (their revocation is written to the
    cache before the commit, worker.hooks)."""
    record_change(
        session,
        org_id=ctx.org_id,
        kind=kind,
        resource_type="Group",
        resource_id=group.id,
        user_ids=list(user_ids),
        group_ids=[group.id],
        actor=ctx.actor,
        request_id=ctx.request_id,
        summary=f"displayName={group.display_name} version={group.version}",
        revoked_user_ids=list(removed),
    )


def _record_both(
    session: Session,
    ctx: ScimContext,
    group: Group,
    document_kind: str | None,
    removed: list[str],
    added: list[str],
) -> None:
    """A write that changed the group's document (``document_kind``) and/or its members
    records one change row for each: the document's first (mapping rules are re-applied
    to a group's new name, and the events say it was renamed), then the members' (their
    recompute, and the revocation of those removed). One row for both would lose one."""
    if document_kind is not None:
        _record(session, ctx, group, document_kind, ())
    if removed or added:
        _record(session, ctx, group, "group.members_changed", [*removed, *added], removed)


def create_group(session: Session, ctx: ScimContext, body: dict[str, Any]) -> Group:
    normalized = normalize_resource(body, GROUP_RESOURCE, mode="create")
    doc = normalized.document
    members = _existing_users(session, ctx.org_id, [m.value for m in normalized.members or []])
    now = utcnow()
    group = Group(org_id=ctx.org_id, version=1, created_at=now, updated_at=now)
    _apply_document(group, doc)
    session.add(group)
    _flush_unique(session, group.display_name)
    added = _insert_members(session, group, members)
    _record(session, ctx, group, "group.created", added)
    return group


def _set_members(
    session: Session, ctx: ScimContext, group: Group, given: list[str]
) -> tuple[list[str], list[str]]:
    """Make the group's members exactly the existing users among ``given``: (removed,
    added)."""
    wanted = _existing_users(session, ctx.org_id, given)
    current = set(
        session.scalars(select(GroupMember.user_id).where(GroupMember.group_id == group.id))
    )
    removed = _delete_members(session, group, sorted(current - set(wanted)))
    return removed, _insert_members(session, group, [u for u in wanted if u not in current])


def replace_group(
    session: Session, ctx: ScimContext, group_id: str, body: dict[str, Any], if_match: str | None
) -> Group:
    group = load_group(session, ctx.org_id, group_id, for_update=True)
    check_etag(if_match, group.version)
    normalized = normalize_resource(body, GROUP_RESOURCE, mode="replace")
    doc = normalized.document
    removed: list[str] = []
    added: list[str] = []
    if normalized.members is not None:  # omitted members: membership is left alone
        removed, added = _set_members(session, ctx, group, [m.value for m in normalized.members])
    renamed = doc != group.attrs
    if renamed:
        _apply_document(group, doc)
        _flush_unique(session, group.display_name)
    if renamed or removed or added:
        _bump(session, group)
        _record_both(session, ctx, group, "group.replaced" if renamed else None, removed, added)
    return group


def patch_group(
    session: Session, ctx: ScimContext, group_id: str, body: dict[str, Any], if_match: str | None
) -> Group:
    group = load_group(session, ctx.org_id, group_id, for_update=True)
    check_etag(if_match, group.version)
    result = apply_patch(dict(group.attrs), body, GROUP_RESOURCE, resource_id=group.id)
    removed: list[str] = []
    added: list[str] = []
    if result.members_replace is not None:
        removed, added = _set_members(session, ctx, group, result.members_replace)
    if result.members_remove_all:
        removed += _delete_members(session, group, None)
    if result.members_remove:
        removed += _delete_members(session, group, sorted(set(result.members_remove)))
    if result.members_add:
        to_add = _existing_users(session, ctx.org_id, result.members_add)
        added += _insert_members(session, group, to_add)
    renamed = result.changed and result.document != group.attrs
    if renamed:
        _apply_document(group, result.document)
        _flush_unique(session, group.display_name)
    if renamed or removed or added:
        _bump(session, group)
        _record_both(session, ctx, group, "group.renamed" if renamed else None, removed, added)
    return group


def delete_group(session: Session, ctx: ScimContext, group_id: str, if_match: str | None) -> None:
    group = load_group(session, ctx.org_id, group_id, for_update=True)
    check_etag(if_match, group.version)
    removed = _delete_members(session, group, None)
    session.delete(group)
    session.flush()
    _record(session, ctx, group, "group.deleted", removed, removed)
