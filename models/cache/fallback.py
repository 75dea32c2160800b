"""Layer: store. Answers computed from SQL with the same pure decision functions as the cache path.

Used when a caller asks for ``min_revision`` and the cache stays behind, and by the
reconcile job as its source of truth.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.access.compiled import decode_compiled
from models.cache.profiles import ProfileBuilder
from models.cache.results import (
    Item,
    Query,
    Result,
    UnknownWorkspaceError,
    decide,
    with_registered_labels,
    workspaces_of,
)
from models.db.config_loader import load_org_config, load_user_inputs
from models.db.database import Database
from models.db.tables import Organization


@contextmanager
def snapshot(database: Database) -> Iterator[Session]:
    """A read-only transaction; repeatable read on PostgreSQL, so an organization
    revision read first is exactly the state every later query of it sees."""
    if database.dialect == "postgresql":
        with database.engine.connect() as raw:
            conn = raw.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin(), Session(bind=conn) as session:
                yield session
        return
    with database.sessions() as session, session.begin():
        yield session


def org_revision(session: Session, org_id: str) -> int:
    rev = session.scalar(select(Organization.revision).where(Organization.id == org_id))
    return int(rev or 0)


def answer_from_sql(database: Database, org_id: str, queries: Sequence[Query]) -> list[Result]:
    with snapshot(database) as session:
        revision = org_revision(session, org_id)
        config = load_org_config(session, org_id)
        inputs = load_user_inputs(session, org_id, {q.user for q in queries})
    workspaces = config.workspace_by_id
    for ws in workspaces_of(queries):
        if ws not in workspaces:
            raise UnknownWorkspaceError(ws)
    builder = ProfileBuilder(config)
    registered = config.labels_by_resource
    out: list[Result] = []
    for q in queries:
        q = with_registered_labels(q, lambda ws, t, i: registered.get((ws, t, i)))  # noqa: PLW2901
        user = inputs.get(q.user)
        if user is None:
            item: Item = ("u", revision, None)
        elif not user.can_act:
            item = ("x", revision, None)
        else:
            payload = builder.build(user.group_ids, revision)
            cid = payload.entries.get(q.workspace)
            item = (
                ("n", revision, None)
                if cid is None
                else ("c", revision, decode_compiled(payload.blobs[cid]))
            )
        out.append(decide(q, item, revision, "sql"))
    return out
