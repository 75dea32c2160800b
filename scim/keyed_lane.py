"""Keyed lookups on the event loop (PostgreSQL): what IdPs send before nearly every write.

Okta asks `GET /Users?filter=userName eq "…"` before creating a user, Entra
`externalId eq "…"` or `userName eq "…"`, both `displayName eq "…"` for groups, and
all of them `GET /Users/{id}` to read one back. Each is one equality on an indexed
column, answered by one prebuilt statement (`scim.listing.keyed_page`). On the thread
path the hand-off to a worker thread and SQLAlchemy's session, pool and result
machinery cost several times the index probe itself; here the same statement runs on
the event loop over psycopg's asyncio connections (`models.db.async_pg`), and the
bearer token is verified from the per-process cache (`models.credential_cache`) or by
one prebuilt lookup on the same connection pool (`scim.lane_auth`).

The lane answers only what it can answer exactly as the thread path would; for anything
else `list`/`get` return None and the request takes the thread path (`scim.routes`):

- a filter that is not a keyed lookup, `sortBy`, a cursor, `count=0`, or parameters
  the thread path will refuse (it raises the right error, after authentication);
- a Group with `members` wanted (a member list has a query of its own);
- a token that is unknown or revoked (the thread path answers 401) or whose
  `last_used_at` is due for its once-a-minute write;
- a page whose totalResults the rows do not tell (`total_if_known`: an externalId
  shared by more rows than `count`);
- an event loop other than the one the app's lifespan opened the pool on.

Tests run every lookup through both paths and compare the bodies
(tests/integration/scim/test_keyed_lane.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Dialect
from starlette.responses import Response

from models.db.async_pg import AsyncPg, Prepared, prepare
from models.db.base import storable
from scim.errors import NotFound, ScimError
from scim.filter.keyed import KeyedLookup, keyed_lookup
from scim.filter.parser import parse_filter
from scim.http import ScimResponse, resource_response
from scim.lane_auth import LaneAuth
from scim.listing import (
    ExtraColumn,
    SearchParams,
    keyed_page,
    page_size,
    parse_params,
    split_page,
    sql_offset,
    total_if_known,
)
from scim.projection import project, wants
from scim.render import list_response
from scim.resources import Caller, ResourceOps, ScimConfig


@dataclass(frozen=True)
class _Plan:
    """A request the lane can answer: which statement, with which values."""

    lookup: KeyedLookup
    extra: ExtraColumn | None  # the rows' `multi_attr`, when wanted
    offset: int
    count: int
    start_index: int  # as asked (the offset stops at listing.MAX_OFFSET)
    attrs: list[str] | None
    excluded: list[str] | None


class KeyedLane:
    """Serves keyed lookups of the resources in `ops` from `pg` (see the module doc)."""

    def __init__(self, pg: AsyncPg, dialect: Dialect, auth: LaneAuth, config: ScimConfig) -> None:
        self.pg = pg
        self.dialect = dialect
        self.auth = auth
        self.config = config
        self._statements: dict[tuple[str, str, ExtraColumn | None], Prepared] = {}

    # -- planning (pure) -------------------------------------------------------------

    def _plan(self, ops: ResourceOps, params: SearchParams, lookup: KeyedLookup) -> _Plan | None:
        attrs, excluded = params.projection()
        full = wants(ops.multi_attr, attrs, excluded, ops.resource)
        if full and ops.page_extra is None:
            return None  # a Group's members: a query of their own
        count = page_size(params, self.config.default_count, self.config.limits.max_results)
        if count == 0:
            return None
        extra = ops.page_extra if full else None
        offset = sql_offset(params)
        return _Plan(lookup, extra, offset, count, params.start_index, attrs, excluded)

    def _list_plan(self, ops: ResourceOps, query: Mapping[str, str]) -> _Plan | None:
        try:
            params = parse_params(dict(query))
            if params.filter is None or params.cursor is not None or params.sort_by:
                return None
            lookup = keyed_lookup(parse_filter(params.filter), ops.resource, "postgresql")
        except ScimError:
            return None  # the thread path answers with the error, after authentication
        return None if lookup is None else self._plan(ops, params, lookup)

    def _get_plan(self, ops: ResourceOps, rid: str, query: Mapping[str, str]) -> _Plan | None:
        if not storable(rid):
            return None  # an id no row can have: the thread path's 404, after authentication
        try:
            params = parse_params(dict(query))
        except ScimError:
            return None
        # No paging for a GET: the one row, if it exists (`count` only sizes the LIMIT).
        plain = SearchParams(
            attributes=params.attributes, excluded_attributes=params.excluded_attributes, count=1
        )
        return self._plan(ops, plain, KeyedLookup("id", rid))

    def _statement(self, ops: ResourceOps, plan: _Plan) -> Prepared:
        key = (ops.resource.id, plan.lookup.column, plan.extra)
        found = self._statements.get(key)
        if found is None:
            page = keyed_page(ops.resource, plan.lookup, plan.extra, "postgresql")
            found = self._statements[key] = prepare(page, self.dialect)
        return found

    # -- I/O -------------------------------------------------------------------------

    async def _rows(
        self, ops: ResourceOps, plan: _Plan | None, caller: Caller
    ) -> tuple[list[dict[str, Any]], list[int], int] | None:
        """(rendered rows, their versions, how many rows came back), or None when the
        lane does not answer: no plan, another event loop, or a token it cannot use."""
        if plan is None or not self.pg.serves_this_loop():
            return None
        ident = await self.auth.identity(caller.token)
        if ident is None:
            return None
        values = {
            "org_id": ident.org_id,
            "value": plan.lookup.value,
            "offset": plan.offset,
            "limit": plan.count + 1,
        }
        fetched = await self.pg.fetch(self._statement(ops, plan), values)
        rows, extras = split_page(fetched, plan.count, plan.extra is not None)
        bodies = ops.render_rows(rows, caller.base_url, extras)
        return bodies, [r.version for r in rows], len(fetched)

    async def list(
        self, ops: ResourceOps, caller: Caller, query: Mapping[str, str]
    ) -> Response | None:
        """`GET /Users?filter=<keyed lookup>` (or /Groups), or None: the thread path."""
        plan = self._list_plan(ops, query)
        found = await self._rows(ops, plan, caller)
        if plan is None or found is None:
            return None
        bodies, _, fetched = found
        total = total_if_known(plan.offset, plan.count, fetched)
        if total is None:
            return None
        resources = [
            project(b, ops.resource, attributes=plan.attrs, excluded=plan.excluded) for b in bodies
        ]
        return ScimResponse(list_response(resources, total=total, start_index=plan.start_index))

    async def get(
        self,
        ops: ResourceOps,
        caller: Caller,
        rid: str,
        query: Mapping[str, str],
        if_none_match: str | None,
    ) -> Response | None:
        """`GET /Users/{id}` (or /Groups/{id}), or None: the thread path."""
        plan = self._get_plan(ops, rid, query)
        found = await self._rows(ops, plan, caller)
        if plan is None or found is None:
            return None
        bodies, versions, _ = found
        if not bodies:
            raise NotFound(f"{ops.resource.name} {rid} not found")
        return resource_response(
            bodies[0], versions[0], ops.resource, plan.attrs, plan.excluded, if_none_match
        )
