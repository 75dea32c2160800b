"""Layer: store. User resources: create, read, replace, patch, delete (one transaction each).

Every accepted write records a change row via `record_change` as its last statement;
a rejected write raises before anything is flushed, so the transaction rolls back.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy import JSON, ColumnElement, Connection, Table, delete, func, select, type_coerce
from sqlalchemy.orm import Session

from models.db.base import new_id, storable, utcnow
from models.db.database import ChangeRow, record, record_change
from models.db.tables import Group, GroupMember, User
from scim.context import ScimContext
from scim.errors import InvalidValue, NotFound, PreconditionFailed
from scim.normalize import normalize_resource
from scim.patch import apply_patch
from scim.render import etag
from scim.schemas import ENTERPRISE_USER, USER_RESOURCE
from scim.uniqueness import conflict_is_409, flush_or_conflict

_USERS = cast(Table, User.__table__)


def check_etag(if_match: str | None, version: int) -> None:
    """RFC 7644 §3.14: a stale If-Match is 412; `*` matches any existing resource."""
    if if_match is None:
        return
    candidates = [c.strip() for c in if_match.split(",")]
    if "*" in candidates:
        return
    current = etag(version)
    strong = current.removeprefix("W/")
    if not any(c in (current, strong) for c in candidates):
        raise PreconditionFailed(f"resource version is {current}, If-Match was {if_match}")


MAX_COLUMN_LENGTH = 512  # userName, externalId, displayName: indexed VARCHAR(512) columns


def check_length(name: str, value: object) -> None:
    """Values that also live in an indexed VARCHAR(512) column: longer is 400
    invalidValue on every backend (PostgreSQL would otherwise fail the INSERT with 500,
    and SQLite would accept what PostgreSQL refuses)."""
    if isinstance(value, str) and len(value) > MAX_COLUMN_LENGTH:
        raise InvalidValue(f"'{name}' is longer than {MAX_COLUMN_LENGTH} characters")


def manager_id(doc: dict[str, Any]) -> str | None:
    """The Enterprise User `manager.value` of a normalized document, if any."""
    ext = doc.get(ENTERPRISE_USER)
    manager = ext.get("manager") if isinstance(ext, dict) else None
    value = manager.get("value") if isinstance(manager, dict) else None
    return value if isinstance(value, str) else None


def check_manager(
    session: Session | Connection, org_id: str, doc: dict[str, Any], was: str | None
) -> None:
    """A user may not name another organization's user as `manager.value` (400
    invalidValue, as another organization's users are refused as group members). An id
    no user has is kept as given: IdPs may send a manager before provisioning them. A
    value that did not change is not checked again."""
    wanted = manager_id(doc)
    if wanted is None or wanted == was or not storable(wanted):
        return
    owner = session.scalar(select(User.org_id).where(User.id == wanted))
    if owner is not None and owner != org_id:
        raise InvalidValue("'manager.value' must be a user of this organization")


def _apply_document(user: User, doc: dict[str, Any]) -> None:
    for name in ("userName", "externalId", "displayName"):
        check_length(name, doc.get(name))
    user_name = str(doc["userName"])
    user.user_name = user_name
    user.user_name_norm = user_name.lower()
    external = doc.get("externalId")
    user.external_id = str(external) if external is not None else None
    display = doc.get("displayName")
    user.display_name = str(display) if display is not None else None
    active = doc.get("active")
    user.active = True if active is None else bool(active)
    user.attrs = doc


def _flush_unique(session: Session, user_name: str) -> None:
    """Flush; a taken userName (also by a concurrent POST) is 409, not 500."""
    flush_or_conflict(
        session, "user_name_norm", f"userName {user_name!r} is already taken in this organization"
    )


Owned = TypeVar("Owned", User, Group)


def load_owned(
    session: Session, model: type[Owned], org_id: str, row_id: str, *, for_update: bool = False
) -> Owned:
    """The organization's User or Group ``row_id`` (locked with ``for_update``); 404 when
    there is none (another organization's included)."""
    if not storable(row_id):
        raise NotFound(f"{model.__name__} {row_id} not found")
    query = select(model).where(model.org_id == org_id, model.id == row_id)
    if for_update:
        query = query.with_for_update()
    found = session.scalar(query)
    if found is None:
        raise NotFound(f"{model.__name__} {row_id} not found")
    return found


def load_user(session: Session, org_id: str, user_id: str, *, for_update: bool = False) -> User:
    return load_owned(session, User, org_id, user_id, for_update=for_update)


def groups_of(session: Session, user_ids: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    """(group id, displayName) per user, for the computed `groups` attribute."""
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    wanted = [uid for uid in user_ids if storable(uid)]
    if not wanted:
        return out
    rows = session.execute(
        select(GroupMember.user_id, Group.id, Group.display_name)
        .join(Group, Group.id == GroupMember.group_id)
        .where(GroupMember.user_id.in_(wanted))
        .order_by(Group.display_name_norm, Group.id)
    ).all()
    for user_id, group_id, name in rows:
        out[user_id].append((group_id, name))
    return out


def groups_column(dialect: str, user_id: ColumnElement[Any]) -> ColumnElement[Any]:
    """A scalar subquery correlated to `user_id` (a page's id column): that user's groups
    as a JSON array of [id, displayName, displayName_norm], order unspecified
    (`groups_from_column` sorts)."""
    if dialect == "postgresql":
        aggregate = func.json_agg(
            func.json_build_array(Group.id, Group.display_name, Group.display_name_norm)
        )
    else:
        aggregate = func.json_group_array(
            func.json_array(Group.id, Group.display_name, Group.display_name_norm)
        )
    return type_coerce(
        select(aggregate)
        .select_from(GroupMember)
        .join(Group, Group.id == GroupMember.group_id)
        .where(GroupMember.user_id == user_id)
        .scalar_subquery(),
        JSON(none_as_null=True),
    )


def groups_from_column(value: Any) -> list[tuple[str, str]]:
    """`groups_column`'s value as (group id, displayName) pairs, in `groups_of` order."""
    if not value:
        return []
    return [(gid, name) for gid, name, _ in sorted(value, key=lambda g: (g[2], g[0]))]


def with_default_active(doc: dict[str, Any]) -> dict[str, Any]:
    """POST/PUT without `active` (or with null) create an active user, and say so in the
    stored document (RFC 7644 §3.3: the service provider MAY assign default values).
    Only a PATCH `remove` can leave `active` unassigned; the user then still counts as
    active, but the representation omits the attribute, as RFC 7644 §3.5.2.2 asks."""
    return doc if "active" in doc else {**doc, "active": True}


@dataclass(frozen=True)
class NewUser:
    """A validated user create: the row to insert and the change that records it."""

    user: User  # transient: rendered once the row is in
    row: dict[str, Any]  # every column of scim_users
    change: ChangeRow
    taken: str  # the 409 detail when the userName is taken


def plan_create(ctx: ScimContext, body: dict[str, Any]) -> NewUser:
    """Validate a POST /Users body (ScimError when it is wrong) into what the one create
    statement inserts. No I/O."""
    normalized = normalize_resource(body, USER_RESOURCE, mode="create")
    doc = with_default_active(normalized.document)
    now = utcnow()
    user = User(id=new_id(), org_id=ctx.org_id, version=1, created_at=now, updated_at=now)
    _apply_document(user, doc)
    change = ChangeRow.of(
        org_id=ctx.org_id,
        kind="user.created",
        resource_type="User",
        resource_id=user.id,
        user_ids=[user.id],
        actor=ctx.actor,
        request_id=ctx.request_id,
        summary=f"userName={user.user_name} active={user.active}",
    )
    row = {c.key: getattr(user, c.key) for c in _USERS.columns}
    taken = f"userName {user.user_name!r} is already taken in this organization"
    return NewUser(user, row, change, taken)


def create_user(session: Session | Connection, ctx: ScimContext, body: dict[str, Any]) -> User:
    """A User create: in a `Database.write` Session (bulk, IdP pulls) or, as one Core
    statement, on a `Database.write_one` Connection (POST /Users)."""
    new = plan_create(ctx, body)
    check_manager(session, ctx.org_id, new.row["attrs"], None)
    # The object stays transient (for rendering): its row is inserted by the change
    # statement itself (PostgreSQL: one statement in all), with no unit-of-work flush.
    with conflict_is_409("user_name_norm", new.taken):
        record(session, new.change, insert_row=(_USERS, new.row))
    return new.user


def _save_changed(
    session: Session, ctx: ScimContext, user: User, doc: dict[str, Any], kind: str
) -> bool:
    """Store `doc` if it differs; returns whether anything changed."""
    was_active = user.active
    if doc == user.attrs:
        return False
    _apply_document(user, doc)
    user.version += 1
    user.updated_at = utcnow()
    _flush_unique(session, user.user_name)
    if was_active and not user.active:
        kind = "user.deactivated"
    elif not was_active and user.active:
        kind = "user.reactivated"
    record_change(
        session,
        org_id=ctx.org_id,
        kind=kind,
        resource_type="User",
        resource_id=user.id,
        user_ids=[user.id],
        actor=ctx.actor,
        request_id=ctx.request_id,
        summary=f"userName={user.user_name} active={user.active} version={user.version}",
    )
    return True


def replace_user(
    session: Session, ctx: ScimContext, user_id: str, body: dict[str, Any], if_match: str | None
) -> User:
    user = load_user(session, ctx.org_id, user_id, for_update=True)
    check_etag(if_match, user.version)
    normalized = normalize_resource(body, USER_RESOURCE, mode="replace")
    check_manager(session, ctx.org_id, normalized.document, manager_id(user.attrs))
    _save_changed(session, ctx, user, with_default_active(normalized.document), "user.replaced")
    return user


def patch_user(
    session: Session, ctx: ScimContext, user_id: str, body: dict[str, Any], if_match: str | None
) -> User:
    user = load_user(session, ctx.org_id, user_id, for_update=True)
    check_etag(if_match, user.version)
    result = apply_patch(dict(user.attrs), body, USER_RESOURCE, resource_id=user.id)
    if result.changed:
        check_manager(session, ctx.org_id, result.document, manager_id(user.attrs))
        _save_changed(session, ctx, user, result.document, "user.patched")
    return user


def delete_user(session: Session, ctx: ScimContext, user_id: str, if_match: str | None) -> None:
    user = load_user(session, ctx.org_id, user_id, for_update=True)
    check_etag(if_match, user.version)
    group_ids = list(
        session.scalars(select(GroupMember.group_id).where(GroupMember.user_id == user.id))
    )
    session.execute(delete(GroupMember).where(GroupMember.user_id == user.id))
    session.delete(user)
    session.flush()
    record_change(
        session,
        org_id=ctx.org_id,
        kind="user.deleted",
        resource_type="User",
        resource_id=user_id,
        user_ids=[user_id],
        group_ids=group_ids,
        actor=ctx.actor,
        request_id=ctx.request_id,
        summary=f"userName={user.user_name}",
    )
