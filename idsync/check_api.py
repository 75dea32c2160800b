"""HTTP check API (for services not written in Python): ``/api/v1/check…``.

Every answer comes from the Redis permission cache through ``AsyncCheckClient`` (one
Redis round trip per request, batches included, on the event loop: ``redis.asyncio``
with connect and read timeouts) and carries ``status`` (allow / deny / unknown),
``allowed``, the cache ``revision`` and a ``reason`` (the codes of
``models.access.reasons`` for allow/deny, the cache's own for unknown). ``explain``
answers like the admin API's ``POST /explain`` (from SQL), with the cache's answer.

Auth (always required): ``Authorization: Bearer <token>`` where the token is either the
service token ``IDSYNC_CHECK_API_TOKEN`` (internal services; any organization, named by
``org``) or an organization admin key (that organization only: ``org`` may be left out;
naming another one is 403 saying which organization the key belongs to). A verified
admin key is remembered for ``IDSYNC_SCIM_TOKEN_CACHE_S`` seconds like a SCIM token
(``models.credential_cache``): no SQL per check.

Bodies are strict: an unknown field is 422 naming it (``spaceId`` for ``space_id`` must
not pass as a check without a Space). When Redis (or, for an admin key's first use, an
organization named by name, or ``explain``, PostgreSQL) cannot answer, a request is 503
with ``Retry-After`` in the /api/v1 error shape (``idsync.admin_api.errors``), never a
guess and never a blocked event loop: a stalled Redis costs the requests that wait on it
``CHECK_REDIS_TIMEOUT_S``, and nothing else.
"""

from __future__ import annotations

import asyncio
import hmac
import uuid
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import redis.asyncio as aredis
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio.cluster import RedisCluster
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry
from sqlalchemy import select

from idsync.admin_api.schemas import ExplainIn
from idsync.input_guard import storable_input
from idsync.settings import Settings
from models.access.errors import ValidationError
from models.access.inputs import ResourceRef
from models.access.refs import SyncRef
from models.cache.async_client import AsyncCheckClient
from models.cache.fallback import answer_from_sql
from models.cache.results import (
    Answer,
    Check,
    Query,
    Result,
    SpacesAnswer,
    SpacesQuery,
    SyncCheck,
)
from models.credential_cache import VerifiedCache
from models.db.admin_keys import AdminIdentity, verify_admin_key
from models.db.config_errors import ConfigError, ForbiddenError, NotFoundError
from models.db.database import Database
from models.db.tables import Organization
from scim.offload import in_thread

STRICT = ConfigDict(extra="forbid")

# --- request bodies ----------------------------------------------------------------------


class Resource(BaseModel):
    """The resource a grant is asked on (``models.access.inputs.ResourceRef``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"type": "audience", "id": "a1", "space_id": "uk"}]},
    )

    type: str = Field(description="source, destination, audience, sync, parent_model…")
    id: str | None = None
    space_id: str | None = Field(
        default=None, description="the Space of a Space-scoped resource (audience, sync)"
    )
    subsets: dict[str, list[str]] | None = Field(
        default=None, description="audience: subset values used, by category"
    )
    labels: dict[str, str] | None = Field(
        default=None,
        description="legacy label conditions; left out: the registered resource's labels",
    )
    space_scoped: bool = Field(
        default=False,
        description="the resource lives in a Space (audiences and syncs always do)",
    )

    def ref(self) -> ResourceRef:
        subsets = None
        if self.subsets is not None:
            subsets = frozenset((k, v) for k, vs in self.subsets.items() for v in vs)
        labels = None if self.labels is None else frozenset(self.labels.items())
        return ResourceRef(self.type, self.id, self.space_id, labels, subsets, self.space_scoped)


class CheckBody(BaseModel):
    """``check(user, workspace, grant, resource?)``."""

    model_config = STRICT

    type: Literal["check"] = "check"
    user: str = Field(description="the user's id (SCIM id)")
    workspace: str = Field(description="the workspace's id")
    grant: str = Field(description="a v2 grant (create_sources…) or a legacy action")
    resource: Resource | None = None


class SyncBody(BaseModel):
    """``check_sync``: both sides of a sync granted by the same group."""

    model_config = STRICT

    type: Literal["sync"] = "sync"
    user: str
    workspace: str
    source: Resource | str = Field(description="a source id, or a resource (parent model…)")
    destination: Resource | str = Field(description="a destination id or resource")
    action: str = Field(description="the action on the sync (configure, draft, read…)")
    space_id: str | None = Field(default=None, description="the sync's Space")
    id: str | None = Field(default=None, description="legacy: the sync's id")
    labels: dict[str, str] | None = Field(
        default=None, description="legacy: the sync's labels (win over the registered ones)"
    )
    model: Resource | str | None = Field(default=None, description="legacy: the sync's model")

    def sync(self) -> SyncRef:
        src = self.source.ref() if isinstance(self.source, Resource) else self.source
        dst = self.destination.ref() if isinstance(self.destination, Resource) else self.destination
        model = self.model.ref() if isinstance(self.model, Resource) else self.model
        labels = None if self.labels is None else frozenset(self.labels.items())
        return SyncRef.of(src, dst, self.space_id, id=self.id, labels=labels, model=model)


class SpacesBody(BaseModel):
    """The Spaces a user sees in a workspace."""

    model_config = STRICT

    type: Literal["spaces"] = "spaces"
    user: str
    workspace: str


Item = Annotated[CheckBody | SyncBody | SpacesBody, Field(discriminator="type")]

ORG_DOC = (
    "the organization's id or name; may be left out with an admin key (its own), "
    "required with the service token"
)
MIN_REVISION_DOC = (
    "answer from a cache at least this fresh: waits up to 0.25 s for it, then computes "
    "the answer from SQL (source: sql)"
)


class Addressed(BaseModel):
    """Which organization a request asks about, and how fresh the answer must be."""

    org: str | None = Field(default=None, description=ORG_DOC)
    min_revision: int | None = Field(default=None, description=MIN_REVISION_DOC)


class CheckRequest(CheckBody, Addressed):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"org": "acme", "user": "2819c223-…", "workspace": "eu", "grant": "create_sources"},
                {
                    "user": "2819c223-…",
                    "workspace": "eu",
                    "grant": "edit_audiences",
                    "resource": {"type": "audience", "id": "a1", "space_id": "uk"},
                    "min_revision": 1842,
                },
            ]
        },
    )


class SyncRequest(SyncBody, Addressed):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "org": "acme",
                    "user": "2819c223-…",
                    "workspace": "eu",
                    "source": "s1",
                    "destination": "d1",
                    "action": "configure",
                    "space_id": "uk",
                }
            ]
        },
    )


class SpacesRequest(SpacesBody, Addressed):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"org": "acme", "user": "2819c223-…", "workspace": "eu"}]},
    )


class BatchRequest(Addressed):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "org": "acme",
                    "checks": [
                        {"type": "check", "user": "u1", "workspace": "eu", "grant": "read"},
                        {"type": "spaces", "user": "u1", "workspace": "eu"},
                    ],
                }
            ]
        },
    )

    checks: list[Item] = Field(max_length=1000, description="up to 1000 mixed questions")


# --- answers -----------------------------------------------------------------------------

REASON_DOC = (
    "allow: granted; deny: the first thing missing (docs/admin-api.md, Reasons: "
    "unknown_user, user_inactive_or_deleted, no_role_in_workspace, not_valid_for_model, "
    "space_id_required, space_not_visible, grant_missing, subset_not_allowed, "
    "not_same_group, labels_not_matched); unknown: cache_not_built, cache_inconsistent, "
    "cache_behind_min_revision, revocation_pending"
)


class CheckAnswer(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "allow",
                    "allowed": True,
                    "revision": 1842,
                    "reason": "granted",
                    "source": "cache",
                },
                {
                    "status": "deny",
                    "allowed": False,
                    "revision": 1842,
                    "reason": "space_not_visible",
                    "source": "cache",
                },
                {
                    "status": "unknown",
                    "allowed": False,
                    "revision": 1841,
                    "reason": "revocation_pending",
                    "source": "cache",
                },
            ]
        }
    )

    status: Literal["allow", "deny", "unknown"] = Field(
        description="unknown: the cache cannot answer now (never a guess); treat as not allowed"
    )
    allowed: bool
    revision: int = Field(description="the organization revision the answer reflects")
    reason: str = Field(description=REASON_DOC)
    source: Literal["cache", "sql"]


class SpacesAnswerOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ok",
                    "spaces": ["uk", "de"],
                    "revision": 1842,
                    "reason": "",
                    "source": "cache",
                }
            ]
        }
    )

    status: Literal["ok", "unknown"]
    spaces: list[str] | Literal["all"] | None = Field(
        description='visible Space ids, "all", or null when unknown'
    )
    revision: int
    reason: str
    source: Literal["cache", "sql"]


class BatchAnswer(BaseModel):
    results: list[CheckAnswer | SpacesAnswerOut] = Field(description="in the order asked")


class ExplainAnswer(BaseModel):
    cache: CheckAnswer = Field(description="what a check answers now")
    explanation: dict[str, Any] = Field(description="what POST /api/v1/explain answers")


def _query(item: CheckBody | SyncBody | SpacesBody) -> Query:
    if isinstance(item, SyncBody):
        return SyncCheck(item.user, item.workspace, item.sync(), item.action)
    if isinstance(item, SpacesBody):
        return SpacesQuery(item.user, item.workspace)
    return Check(
        item.user,
        item.workspace,
        item.grant,
        None if item.resource is None else item.resource.ref(),
    )


def render(result: Result) -> dict[str, Any]:
    if isinstance(result, SpacesAnswer):
        spaces: Any = result.spaces
        if isinstance(spaces, frozenset):
            spaces = sorted(spaces)
        return {
            "status": "unknown" if result.spaces is None else "ok",
            "spaces": spaces,
            "revision": result.revision,
            "reason": result.reason,
            "source": result.source,
        }
    assert isinstance(result, Answer)
    return {
        "status": result.status,
        "allowed": result.allowed,
        "revision": result.revision,
        "reason": result.reason,
        "source": result.source,
    }


def _json(value: Any) -> Response:
    return Response(orjson.dumps(value), media_type="application/json")


# --- Redis -------------------------------------------------------------------------------

CHECK_REDIS_TIMEOUT_S = 1.0
"""Connect and read timeout of the check API's Redis client (a check's round trip takes
tens of microseconds; a Redis that has not answered in a second is treated as down)."""


def check_redis_client(url: str) -> aredis.Redis | RedisCluster:
    """Bounded timeouts; one immediate retry on a connection error only (a pooled
    connection closed by a Redis restart), none on a timeout (a stall costs one).
    ``?cluster=true`` in the URL: a Redis Cluster (as ``models.cache.connection``)."""
    cluster, plain = _cluster_url(url)
    options: dict[str, Any] = {
        "socket_timeout": CHECK_REDIS_TIMEOUT_S,
        "socket_connect_timeout": CHECK_REDIS_TIMEOUT_S,
    }
    if cluster:
        return RedisCluster.from_url(plain, **options)
    return aredis.Redis.from_url(
        plain, retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)), **options
    )


def _cluster_url(url: str) -> tuple[bool, str]:
    """(``cluster=true|1|yes`` in the query, the URL without that parameter)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    flags = [v.lower() for k, v in query if k.lower() == "cluster"]
    if not flags:
        return False, url
    rest = urlencode([(k, v) for k, v in query if k.lower() != "cluster"])
    return flags[-1] in ("true", "1", "yes"), urlunsplit(parts._replace(query=rest))


class Checker:
    """Check clients per organization over one ``redis.asyncio`` client (one per event
    loop: a client's connections belong to the loop that opened them)."""

    def __init__(self, url: str, database: Database) -> None:
        self.url = url
        self.database = database
        self._loop: asyncio.AbstractEventLoop | None = None
        self._redis: aredis.Redis | RedisCluster | None = None
        self._clients: dict[str, AsyncCheckClient] = {}

    def _client(self, org_id: str) -> AsyncCheckClient:
        loop = asyncio.get_running_loop()
        if loop is not self._loop or self._redis is None:
            self._loop, self._redis = loop, check_redis_client(self.url)
            for kept in self._clients.values():
                kept.redis = self._redis
        found = self._clients.get(org_id)
        if found is not None:
            return found
        try:
            made = AsyncCheckClient(self._redis, org_id, sql=self._sql)
        except ValueError as exc:
            raise HTTPException(400, f"org: {exc}") from exc
        if len(self._clients) > 10_000:
            self._clients.clear()
        self._clients[org_id] = made
        return made

    async def _sql(self, org_id: str, queries: Sequence[Query]) -> list[Result]:
        return await in_thread(answer_from_sql, self.database, org_id, queries)

    async def run(
        self, org_id: str, queries: list[Query], min_revision: int | None
    ) -> list[Result]:
        try:
            return await self._client(org_id).batch(queries, min_revision=min_revision)
        except ValidationError as exc:
            raise HTTPException(400, str(exc)) from exc


# --- credentials -------------------------------------------------------------------------

SERVICE = "service"
SYNC_FIELDS = ("source", "destination", "action", "space_id", "id", "labels", "model")
CHECK_FIELDS = ("grant", "resource")


class CheckAuth:
    """Service token → every organization; admin key → its own organization only.

    Verified admin keys are remembered for ``ttl_s`` seconds (``VerifiedCache``, the
    SCIM tokens' mechanism and window); organization names met with the service token
    likewise (name → id).
    """

    def __init__(self, token: str | None, database: Database, ttl_s: float) -> None:
        self.token = token
        self.database = database
        self.keys: VerifiedCache[AdminIdentity] = VerifiedCache(ttl_s)
        self.names: VerifiedCache[str] = VerifiedCache(ttl_s)

    def _verify(self, given: str) -> AdminIdentity | None:
        with self.database.read() as session:
            return verify_admin_key(session, given)

    async def identity(self, request: Request) -> AdminIdentity | None:
        """None for the service token, the admin key's identity, or 401."""
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        given = given.strip()
        if scheme.lower() != "bearer" or not given:
            raise _unauthorized()
        if self.token and hmac.compare_digest(given.encode(), self.token.encode()):
            return None
        found = self.keys.get(given)
        if found is None:
            found = await in_thread(self._verify, given)
            if found is None:
                raise _unauthorized()
            self.keys.put(given, found)
        return found

    def _org_id_of(self, name: str) -> str | None:
        with self.database.read() as session:
            return session.scalar(select(Organization.id).where(Organization.name == name))

    async def org(self, request: Request, org: str | None) -> str:
        """The organization id a request asks about (see the module doc)."""
        identity = await self.identity(request)
        if identity is not None:
            if org is None or org in (identity.org_id, identity.org_name):
                return identity.org_id
            raise ForbiddenError(
                "org",
                f"this admin key belongs to organization {identity.org_name!r} "
                f"(id {identity.org_id})",
            )
        if org is None:
            raise ConfigError("org", "required with the service token: an organization id or name")
        if _is_id(org):
            return org
        found = self.names.get(org)
        if found is None:
            found = await in_thread(self._org_id_of, org)
            if found is None:
                raise NotFoundError("org", f"no organization named {org!r}")
            self.names.put(org, found)
        return found


def _is_id(value: str) -> bool:
    """Organization ids are UUIDs; anything else names an organization by name."""
    if len(value) != 36:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _unauthorized() -> HTTPException:
    return HTTPException(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})


# --- routes ------------------------------------------------------------------------------


def check_router(settings: Settings, database: Database) -> APIRouter:
    url = settings.resolved_cache_redis_url()
    router = APIRouter(
        prefix="/api/v1/check", tags=["check"], dependencies=[Depends(storable_input)]
    )
    checker = Checker(url, database) if url else None
    auth = CheckAuth(
        Settings.reveal(settings.check_api_token), database, settings.scim_token_cache_s
    )

    async def ask(
        request: Request, org: str | None, queries: list[Query], rev: int | None
    ) -> list[Result]:
        org_id = await auth.org(request, org)
        if checker is None:
            raise HTTPException(503, "no permission cache configured (REDIS_URL)")
        return await checker.run(org_id, queries, rev)

    responses: dict[int | str, dict[str, Any]] = {
        401: {"description": "no or a wrong bearer token"},
        403: {"description": "an admin key asking about another organization"},
        422: {"description": "an unknown or missing field (field names it)"},
        503: {"description": "Redis unreachable or stalled (Retry-After: 1)"},
    }

    @router.post("", response_model=CheckAnswer, responses=responses)
    async def check(body: CheckRequest, request: Request) -> Response:
        """``check(user, workspace, grant, resource?)``: allow / deny / unknown + revision."""
        results = await ask(request, body.org, [_query(body)], body.min_revision)
        return _json(render(results[0]))

    @router.post("/sync", response_model=CheckAnswer, responses=responses)
    async def check_sync(body: SyncRequest, request: Request) -> Response:
        """``check_sync``: both sides from the same group."""
        results = await ask(request, body.org, [_query(body)], body.min_revision)
        return _json(render(results[0]))

    @router.post("/spaces", response_model=SpacesAnswerOut, responses=responses)
    async def visible_spaces(body: SpacesRequest, request: Request) -> Response:
        """Visible Spaces of a user in a workspace (a list, or "all")."""
        results = await ask(request, body.org, [_query(body)], body.min_revision)
        return _json(render(results[0]))

    @router.post("/batch", response_model=BatchAnswer, responses=responses)
    async def batch(body: BatchRequest, request: Request) -> Response:
        """Up to 1000 mixed questions, answered from one Redis round trip."""
        queries = [_query(i) for i in body.checks]
        results = await ask(request, body.org, queries, body.min_revision)
        return _json({"results": [render(r) for r in results]})

    @router.post("/explain", response_model=ExplainAnswer, responses=responses)
    async def explain(body: ExplainIn, request: Request) -> Response:
        """Why: what ``POST /api/v1/explain`` answers (from SQL: groups, roles, bindings,
        rules, what is missing), next to the cache's answer to the same question. Takes
        the body of a check or of a sync check, like that endpoint."""
        from idsync.admin_api.access_routes import explain as explain_sql

        org_id = await auth.org(request, body.org)
        question = body.model_copy(update={"org": None, "min_revision": None})
        identity = AdminIdentity(SERVICE, org_id, "")
        explanation = await in_thread(explain_sql, question, identity, database)
        given = body.model_fields_set
        form = body.type or ("sync" if given & {"source", "destination", "action"} else "check")
        fields = SYNC_FIELDS if form == "sync" else CHECK_FIELDS
        item = (SyncBody if form == "sync" else CheckBody).model_validate(
            body.model_dump(include={"user", "workspace", *fields}, exclude_none=True)
        )
        query = _query(item)
        if checker is None:
            raise HTTPException(503, "no permission cache configured (REDIS_URL)")
        cached = (await checker.run(org_id, [query], None))[0]
        return _json({"cache": render(cached), "explanation": _jsonable(explanation)})

    return router


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    return value
