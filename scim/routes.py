"""Layer: app. The SCIM 2.0 HTTP API (RFC 7644), mounted under /scim/v2.

Handlers are thin: authenticate, parse, run one transaction in the thread pool, render.
Every operation has this one path, on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Router

from models.credential_cache import VerifiedCache
from models.db.base import utcnow
from models.db.database import Database
from models.db.reads import reading
from models.db.tokens import TokenIdentity, touch_token, verify_scim_token
from scim import users as user_store
from scim.bulk import run_bulk
from scim.context import ScimContext
from scim.discovery import resource_types, schemas, service_provider_config
from scim.errors import InvalidValue, NotFound, ScimError
from scim.filter.keyed import KeyedLookup
from scim.http import (
    ScimResponse,
    Unauthorized,
    exception_response,
    parse_json_object,
    read_body,
    read_json_object,
    resource_response,
    written_response,
)
from scim.listing import (
    SearchParams,
    cursor_search,
    keyed_rows,
    page_size,
    parse_params,
    search,
    split_page,
    validate_filter,
)
from scim.offload import in_thread
from scim.projection import project, wants
from scim.render import etag, list_response, render_user
from scim.resources import GROUPS, USERS, Caller, ResourceOps, Row, ScimConfig
from scim.schemas import LIST_RESPONSE, SCHEMAS
from scim.totals import Totals

BASE_URLS_KEPT = 64
"""Base URLs remembered per (scheme, Host, root path); past it all are dropped."""


def _projection_args(query: dict[str, str]) -> tuple[list[str] | None, list[str] | None]:
    return parse_params(query).projection()


class ScimApi:
    """Builds the router; holds the database and limits."""

    def __init__(
        self,
        db: Database,
        config: ScimConfig,
        tokens: VerifiedCache[TokenIdentity] | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self.tokens = tokens or VerifiedCache(config.token_cache_s)
        self.totals = Totals()  # list pages' totalResults by organization revision
        self._base_urls: dict[tuple[Any, str | None, Any], str] = {}

    # -- plumbing -------------------------------------------------------------------

    def base_url(self, request: Request) -> str:
        """The SCIM base URL resources' ``location`` starts with: the configured public
        one, else the request's (scheme, Host, root path: remembered per combination, a
        few dozen at most, as Starlette's URL building costs a create ~2% of its CPU)."""
        if self.config.public_base_url:
            return self.config.public_base_url.rstrip("/") + "/scim/v2"
        scope = request.scope
        key = (scope.get("scheme"), request.headers.get("host"), scope.get("root_path", ""))
        found = self._base_urls.get(key)
        if found is None:
            if len(self._base_urls) >= BASE_URLS_KEPT:
                self._base_urls.clear()
            found = self._base_urls[key] = str(request.base_url).rstrip("/") + "/scim/v2"
        return found

    def _identity(
        self, session: Session | Connection, presented: str
    ) -> tuple[TokenIdentity, bool]:
        """The token's identity and whether its `last_used_at` is due for a write.

        A token verified in the last `token_cache_s` seconds is taken from memory (no
        round trip); otherwise it is looked up in `session`. Unknown or revoked: 401.
        """
        ident = self.tokens.get(presented)
        if ident is not None and not ident.use_is_stale():
            return ident, False
        ident = verify_scim_token(session, presented)
        if ident is None:
            raise Unauthorized("the bearer token is unknown or revoked")
        due = ident.use_is_stale()
        # Remembered as used now when a touch is due: the caller writes it next.
        self.tokens.put(presented, replace(ident, last_used_at=utcnow()) if due else ident)
        return ident, due

    def _authenticate_sync(self, presented: str) -> tuple[str, str]:
        with reading(self.db) as conn:
            ident, due = self._identity(conn, presented)
        if due:  # at most one write per token per minute
            with self.db.write() as session:
                touch_token(session, ident.token_id)
        return ident.org_id, ident.token_id

    def caller(self, request: Request) -> Caller:
        """The presented bearer token (401 when there is none); not yet verified."""
        header = request.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise Unauthorized()
        return Caller(
            token=presented.strip(),
            base_url=self.base_url(request),
            request_id=getattr(request.state, "request_id", None),
        )

    async def context(self, request: Request) -> ScimContext:
        """A verified context in a transaction of its own (discovery, /Me, bulk)."""
        caller = self.caller(request)
        org_id, token_id = await in_thread(self._authenticate_sync, caller.token)
        return caller.context(org_id, token_id)

    @contextmanager
    def _reading(self, caller: Caller) -> Iterator[tuple[Connection, ScimContext]]:
        """A read request's connection (`Database.reader`: Core statements, no ORM
        Session), its token verified first (from memory, or as the first statement).

        A due `last_used_at` update follows in a short write of its own (at most once a
        minute per token)."""
        with reading(self.db) as conn:
            ident, due = self._identity(conn, caller.token)
            yield conn, caller.context(ident.org_id, ident.token_id)
        if due:
            with self.db.write() as session:
                touch_token(session, ident.token_id)

    @contextmanager
    def _writing(self, caller: Caller) -> Iterator[tuple[Session, ScimContext]]:
        """A write request's one transaction, its token verified as the first statement.

        Authenticating here rather than in a transaction of its own saves a pool checkout,
        a BEGIN and a ROLLBACK and a thread hop per request. A due `last_used_at` update
        joins the transaction.
        """
        with self.db.write() as session:
            ident, due = self._identity(session, caller.token)
            if due:
                touch_token(session, ident.token_id)
            yield session, caller.context(ident.org_id, ident.token_id)

    @contextmanager
    def _writing_one(self, caller: Caller) -> Iterator[tuple[Connection, ScimContext]]:
        """`_writing` for a write of one statement (`Database.write_one`: a plain
        Connection). A due `last_used_at` update follows in a short write of its own: the
        one statement must be the request's."""
        with self.db.write_one() as conn:
            ident, due = self._identity(conn, caller.token)
            yield conn, caller.context(ident.org_id, ident.token_id)
        if due:
            with self.db.write() as session:
                touch_token(session, ident.token_id)

    # -- resources --------------------------------------------------------------------

    def _get_sync(
        self,
        ops: ResourceOps,
        caller: Caller,
        rid: str,
        query: dict[str, str],
        if_none_match: str | None,
    ) -> Response:
        with self._reading(caller) as (conn, ctx):
            attrs, excluded = _projection_args(query)
            full = wants(ops.multi_attr, attrs, excluded, ops.resource)
            extra = ops.page_extra if full else None
            lookup = KeyedLookup("id", rid)
            found = keyed_rows(
                conn, ops.resource, ctx.org_id, lookup, offset=0, limit=1, extra=extra
            )
            rows, extras = split_page(found, 1, extra is not None)
            if not rows:
                raise NotFound(f"{ops.resource.name} {rid} not found")
            body = ops.render(conn, rows, ctx.base_url, full, extras)[0]
        return resource_response(
            body, rows[0].version, ops.resource, attrs, excluded, if_none_match
        )

    def _write_sync(
        self,
        ops: ResourceOps,
        action: Callable[[Session, ScimContext, dict[str, Any]], Row],
        caller: Caller,
        query: dict[str, str],
        raw_body: bytes,
        status: int,
        rid: str | None = None,
    ) -> Response:
        """Run a create (`rid` None) or an update of `rid` and render the result.

        A write records its change row last, and that `UPDATE organizations … RETURNING`
        holds the organization's row lock until COMMIT: every other write of the
        organization waits for it. Nothing else should run in that window, so a User's
        `groups` (which no User write changes) are read before the write, or known to be
        empty for a new user, and the User is rendered after COMMIT.
        """
        groups: list[tuple[str, str]] | None = None
        rendered: dict[str, Any] | None = None
        with self._writing(caller) as (session, ctx):
            body = parse_json_object(raw_body)
            attrs, excluded = _projection_args(query)
            full = wants(ops.multi_attr, attrs, excluded, ops.resource)
            if ops is USERS:
                if full:
                    groups = user_store.groups_of(session, [rid]).get(rid, []) if rid else []
                row = action(session, ctx, body)
            else:
                row = action(session, ctx, body)
                rendered = ops.render(session.connection(), [row], ctx.base_url, full, None)[0]
        if rendered is None:  # a User renders from loaded state: after COMMIT, off the lock
            rendered = render_user(row, ctx.base_url, groups)
        return written_response(rendered, ops.resource, attrs, excluded, status)

    def _create_one_sync(
        self,
        ops: ResourceOps,
        create: Callable[[Connection, ScimContext, dict[str, Any]], Row],
        caller: Caller,
        query: dict[str, str],
        raw_body: bytes,
    ) -> Response:
        """POST of a resource created by one statement (`ResourceOps.create_one_statement`:
        a User) on the `Database.write_one` Connection, rendered after COMMIT (a new User
        is in no group). On PostgreSQL the statement is its own transaction, so the
        organization's row lock is not held across a client round trip."""
        with self._writing_one(caller) as (conn, ctx):
            body = parse_json_object(raw_body)
            attrs, excluded = _projection_args(query)
            full = wants(ops.multi_attr, attrs, excluded, ops.resource)
            row = create(conn, ctx, body)
        rendered = render_user(row, ctx.base_url, [] if full else None)
        return written_response(rendered, ops.resource, attrs, excluded, 201)

    def _patch_sync(
        self,
        ops: ResourceOps,
        caller: Caller,
        rid: str,
        query: dict[str, str],
        raw_body: bytes,
        if_match: str | None,
    ) -> Response:
        attrs, excluded = _projection_args(query) if query else (None, None)
        if ops is GROUPS and attrs is None and excluded is None:
            # A group's member list may be huge: answer 204 (RFC 7644 §3.5.2) unless the
            # client asked for a projection of the result.
            with self._writing(caller) as (session, ctx):
                row = ops.patch(session, ctx, rid, parse_json_object(raw_body), if_match)
                tag = etag(row.version)
            return Response(status_code=204, headers={"ETag": tag})
        return self._write_sync(
            ops,
            lambda s, ctx, body: ops.patch(s, ctx, rid, body, if_match),
            caller,
            query,
            raw_body,
            200,
            rid,
        )

    def _list_sync(self, ops: ResourceOps, caller: Caller, raw: dict[str, Any] | bytes) -> Response:
        """GET with query parameters (`raw` a dict) or POST /.search (`raw` the body)."""
        with self._reading(caller) as (conn, ctx):
            params = parse_params(raw if isinstance(raw, dict) else parse_json_object(raw))
            attrs, excluded = params.projection()
            full = wants(ops.multi_attr, attrs, excluded, ops.resource)
            if params.cursor is not None:
                page = cursor_search(
                    conn,
                    ops.resource,
                    ctx.org_id,
                    params,
                    default_count=self.config.default_count,
                    max_results=self.config.limits.max_results,
                    extra=ops.page_extra if full else None,
                )
                bodies = ops.render(conn, page.rows, ctx.base_url, full, page.extras)
            else:
                total, rows, extras = search(
                    conn,
                    ops.resource,
                    ctx.org_id,
                    params,
                    default_count=self.config.default_count,
                    max_results=self.config.limits.max_results,
                    extra=ops.page_extra if full else None,
                    totals=self.totals,
                )
                bodies = ops.render(conn, rows, ctx.base_url, full, extras)
        resources = [project(b, ops.resource, attributes=attrs, excluded=excluded) for b in bodies]
        if params.cursor is not None:  # RFC 9865 §2: no startIndex; totalResults optional
            listed: dict[str, Any] = {"schemas": [LIST_RESPONSE]}
            if page.total is not None:
                listed["totalResults"] = page.total
            listed["itemsPerPage"] = len(resources)
            if page.next_cursor is not None:
                listed["nextCursor"] = page.next_cursor
            listed["Resources"] = resources
            return ScimResponse(listed)
        return ScimResponse(list_response(resources, total=total, start_index=params.start_index))

    def _root_search_sync(self, ctx: ScimContext, params: SearchParams) -> Response:
        """`POST /.search` across Users and Groups; a filter naming attributes that one
        type lacks simply matches nothing of that type (400 only if no type accepts it)."""
        if params.cursor is not None:
            raise InvalidValue(
                "cursor pagination is per resource type: POST /Users/.search or /Groups/.search"
            )
        applicable: list[ResourceOps] = []
        error: ScimError | None = None
        for ops in (USERS, GROUPS):
            problem = (
                validate_filter(ops.resource, params.filter, self.db.dialect)
                if params.filter
                else None
            )
            if problem is None:
                applicable.append(ops)
            else:
                error = problem
        if not applicable and error is not None:
            raise error
        count = page_size(params, self.config.default_count, self.config.limits.max_results)
        attrs, excluded = params.projection()
        total = 0
        resources: list[dict[str, Any]] = []
        skip = params.start_index - 1
        with reading(self.db) as conn:
            for ops in applicable:
                sub_total, _, _ = search(
                    conn,
                    ops.resource,
                    ctx.org_id,
                    SearchParams(filter=params.filter, count=0),
                    default_count=0,
                    max_results=0,
                )
                total += sub_total
                if skip >= sub_total:
                    skip -= sub_total
                    continue
                room = count - len(resources)
                if room <= 0:
                    continue
                page = SearchParams(
                    filter=params.filter,
                    start_index=skip + 1,
                    count=room,
                    sort_by=params.sort_by,
                    sort_order=params.sort_order,
                )
                full = wants(ops.multi_attr, attrs, excluded, ops.resource)
                _, rows, extras = search(
                    conn,
                    ops.resource,
                    ctx.org_id,
                    page,
                    default_count=room,
                    max_results=room,
                    extra=ops.page_extra if full else None,
                )
                skip = 0
                resources += [
                    project(b, ops.resource, attributes=attrs, excluded=excluded)
                    for b in ops.render(conn, rows, ctx.base_url, full, extras)
                ]
        return ScimResponse(list_response(resources, total=total, start_index=params.start_index))

    def _delete_sync(
        self, ops: ResourceOps, caller: Caller, rid: str, if_match: str | None
    ) -> Response:
        with self._writing(caller) as (session, ctx):
            ops.delete(session, ctx, rid, if_match)
        return Response(status_code=204)

    # -- router -------------------------------------------------------------------

    def router(self) -> Router:
        """The SCIM endpoints as a plain Starlette router, mounted at /scim/v2.

        Not a FastAPI router: these endpoints take the raw request (no dependency
        injection, validation or OpenAPI schema), and FastAPI's per-request machinery
        cost more CPU than an indexed lookup (measured: docs/benchmarks.md)."""
        router = Router(redirect_slashes=False)  # one URL per resource: a trailing / is 404
        max_bytes = self.config.limits.max_payload_bytes

        async def guarded(request: Request, handler: Callable[[ScimContext], Any]) -> Response:
            try:
                ctx = await self.context(request)
                result: Response = await handler(ctx)
            except Exception as exc:
                return exception_response(exc)
            return result

        for ops in (USERS, GROUPS):
            self._resource_routes(router, ops, max_bytes)

        async def spc(request: Request) -> Response:
            async def run(ctx: ScimContext) -> Response:
                return ScimResponse(
                    service_provider_config(
                        ctx.base_url, self.config.limits, self.config.default_count
                    )
                )

            return await guarded(request, run)

        async def rtypes(request: Request) -> Response:
            async def run(ctx: ScimContext) -> Response:
                return ScimResponse(list_response(resource_types(ctx.base_url)))

            return await guarded(request, run)

        async def rtype(request: Request) -> Response:
            rid = request.path_params["rid"]

            async def run(ctx: ScimContext) -> Response:
                for item in resource_types(ctx.base_url):
                    if item["id"] == rid:
                        return ScimResponse(item)
                raise NotFound(f"ResourceType {rid} not found")

            return await guarded(request, run)

        async def schema_list(request: Request) -> Response:
            async def run(ctx: ScimContext) -> Response:
                return ScimResponse(list_response(schemas(ctx.base_url)))

            return await guarded(request, run)

        async def schema_one(request: Request) -> Response:
            sid = request.path_params["sid"]

            async def run(ctx: ScimContext) -> Response:
                for schema in SCHEMAS:
                    if schema.id == sid:
                        return ScimResponse(schema.to_scim(ctx.base_url))
                raise NotFound(f"Schema {sid} not found")

            return await guarded(request, run)

        async def root_search(request: Request) -> Response:
            async def run(ctx: ScimContext) -> Response:
                body = await read_json_object(request, max_bytes)
                params = parse_params(body)
                return await in_thread(self._root_search_sync, ctx, params)

            return await guarded(request, run)

        async def bulk(request: Request) -> Response:
            async def run(ctx: ScimContext) -> Response:
                body = await read_json_object(request, max_bytes)
                result = await in_thread(
                    run_bulk,
                    self.db,
                    ctx,
                    body,
                    self.config.limits.max_bulk_operations,
                    {"Users": USERS, "Groups": GROUPS},
                )
                return ScimResponse(result)

            return await guarded(request, run)

        async def me(request: Request) -> Response:
            async def run(ctx: ScimContext) -> Response:
                raise ScimError(501, "/Me is not supported: tokens belong to organizations")

            return await guarded(request, run)

        router.add_route("/ServiceProviderConfig", spc, methods=["GET"])
        router.add_route("/ResourceTypes", rtypes, methods=["GET"])
        router.add_route("/ResourceTypes/{rid}", rtype, methods=["GET"])
        router.add_route("/Schemas", schema_list, methods=["GET"])
        router.add_route("/Schemas/{sid}", schema_one, methods=["GET"])
        router.add_route("/.search", root_search, methods=["POST"])
        router.add_route("/Bulk", bulk, methods=["POST"])
        router.add_route("/Me", me, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
        return router

    def _resource_routes(self, router: Router, ops: ResourceOps, max_bytes: int) -> None:
        """Users/Groups endpoints: the header is checked here, everything else (token,
        parameters, body) on the request's one connection or transaction (`_reading`,
        `_writing`), so a request with a wrong token gets 401 whatever its parameters or
        body."""
        path = ops.resource.endpoint

        async def run(request: Request, call: Callable[[Caller], Any]) -> Response:
            try:
                result: Response = await call(self.caller(request))
            except Exception as exc:
                return exception_response(exc)
            return result

        async def list_(request: Request) -> Response:
            query = dict(request.query_params)
            return await run(request, lambda c: in_thread(self._list_sync, ops, c, query))

        async def search_(request: Request) -> Response:
            async def call(c: Caller) -> Response:
                raw = await read_body(request, max_bytes)
                return await in_thread(self._list_sync, ops, c, raw)

            return await run(request, call)

        async def create(request: Request) -> Response:
            async def call(c: Caller) -> Response:
                raw = await read_body(request, max_bytes)
                query = dict(request.query_params)
                if ops.create_one_statement is not None:
                    return await in_thread(
                        self._create_one_sync, ops, ops.create_one_statement, c, query, raw
                    )
                return await in_thread(self._write_sync, ops, ops.create, c, query, raw, 201, None)

            return await run(request, call)

        async def get(request: Request) -> Response:
            rid = request.path_params["rid"]
            query = dict(request.query_params)
            if_none_match = request.headers.get("if-none-match")

            return await run(
                request, lambda c: in_thread(self._get_sync, ops, c, rid, query, if_none_match)
            )

        async def replace(request: Request) -> Response:
            rid = request.path_params["rid"]

            async def call(c: Caller) -> Response:
                raw = await read_body(request, max_bytes)
                if_match = request.headers.get("if-match")
                return await in_thread(
                    self._write_sync,
                    ops,
                    lambda s, ctx, body: ops.replace(s, ctx, rid, body, if_match),
                    c,
                    dict(request.query_params),
                    raw,
                    200,
                    rid,
                )

            return await run(request, call)

        async def patch(request: Request) -> Response:
            rid = request.path_params["rid"]

            async def call(c: Caller) -> Response:
                raw = await read_body(request, max_bytes)
                return await in_thread(
                    self._patch_sync,
                    ops,
                    c,
                    rid,
                    dict(request.query_params),
                    raw,
                    request.headers.get("if-match"),
                )

            return await run(request, call)

        async def delete(request: Request) -> Response:
            rid = request.path_params["rid"]
            return await run(
                request,
                lambda c: in_thread(
                    self._delete_sync, ops, c, rid, request.headers.get("if-match")
                ),
            )

        router.add_route(path, list_, methods=["GET"])
        router.add_route(path, create, methods=["POST"])
        router.add_route(f"{path}/.search", search_, methods=["POST"])
        router.add_route(f"{path}/{{rid}}", get, methods=["GET"])
        router.add_route(f"{path}/{{rid}}", replace, methods=["PUT"])
        router.add_route(f"{path}/{{rid}}", patch, methods=["PATCH"])
        router.add_route(f"{path}/{{rid}}", delete, methods=["DELETE"])
