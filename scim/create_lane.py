"""`POST /Users` on the event loop (PostgreSQL): the create IdPs send most.

A user create is one statement on PostgreSQL (`models.db.database.record_statement_pg`:
insert the row, allocate the organization's revision, write the change row), run as its
own transaction. On the thread path, the hand-off to a worker thread and SQLAlchemy's
session around that one statement cost about as much CPU as everything else the request
does (in process: 0.92 -> 0.43 ms of CPU per create, docs/benchmarks.md). Here the same
statement, with the same binds (`record_params_pg`) from the same validation
(`scim.users.plan_create`), runs on the event-loop pool (`models.db.async_pg`).

What the thread path guarantees holds here too:
- the token is verified first (`scim.lane_auth`); then the query and the body are
  parsed, and any error (400) leaves nothing written;
- a taken userName is 409 `uniqueness` from the unique index, also when two creates race;
- the change's listeners (the after-commit hook that marks the user dirty in Redis) are
  told only after the statement has committed, and in a worker thread, since they do
  blocking I/O;
- a token that is unknown, revoked, or due for its `last_used_at` write takes the thread
  path (None), which answers it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from starlette.responses import Response

from models.db.async_pg import AsyncPg, prepare
from models.db.database import Database, record_params_pg, record_statement_pg
from models.db.tables import User
from scim.http import parse_json_object, written_response
from scim.lane_auth import LaneAuth
from scim.listing import parse_params
from scim.offload import in_thread
from scim.projection import wants
from scim.render import render_user
from scim.resources import Caller
from scim.schemas import USER_RESOURCE
from scim.uniqueness import conflict_is_409
from scim.users import manager_id, plan_create


class CreateLane:
    def __init__(self, pg: AsyncPg, dialect: Dialect, auth: LaneAuth, db: Database) -> None:
        self.pg = pg
        self.auth = auth
        self.db = db
        self._statement = prepare(record_statement_pg(cast(Table, User.__table__)), dialect)

    async def create(self, caller: Caller, query: Mapping[str, str], raw: bytes) -> Response | None:
        """The 201 (or the error) for a POST /Users, or None: the thread path."""
        if not self.pg.serves_this_loop():
            return None
        ident = await self.auth.identity(caller.token)
        if ident is None:
            return None
        ctx = caller.context(ident.org_id, ident.token_id)
        body = parse_json_object(raw)
        attrs, excluded = parse_params(dict(query)).projection()
        new = plan_create(ctx, body)
        if manager_id(new.row["attrs"]) is not None:
            return None  # the thread path checks the manager's organization (a query)
        with conflict_is_409("user_name_norm", new.taken):
            rows = await self.pg.write(self._statement, record_params_pg(new.change, new.row))
        committed = new.change.committed(int(rows[0][0]))
        if self.db.has_listeners:
            await in_thread(self.db.publish, [committed])
        groups: list[tuple[str, str]] | None = (
            [] if wants("groups", attrs, excluded, USER_RESOURCE) else None
        )  # a new user is in no group
        rendered = render_user(new.user, ctx.base_url, groups)
        return written_response(rendered, USER_RESOURCE, attrs, excluded, 201)
