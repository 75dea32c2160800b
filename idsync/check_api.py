"""Layer: app. HTTP check API (for services not written in Python): ``/api/v1/check…``.

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
import logging
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import replace
from functools import lru_cache
from typing import Annotated, Any, Final, Literal, get_type_hints

import orjson
import redis.asyncio as aredis
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError
from redis.asyncio.cluster import RedisCluster
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry
from sqlalchemy import select

from idsync.admin_api.access_routes import explain as explain_sql
from idsync.admin_api.schemas import ExplainIn
from idsync.input_guard import refuse_unstorable_body, storable_input
from models import json_text
from models.access.errors import ValidationError
from models.access.inputs import ResourceRef
from models.access.refs import SyncRef
from models.cache.async_client import AsyncCheckClient
from models.cache.connection import split_cluster_url
from models.cache.fallback import answer_from_sql
from models.cache.local_answers import LocalAnswers
from models.cache.results import (
    Answer,
    Check,
    Query,
    Result,
    SpacesAnswer,
    SpacesQuery,
    SyncCheck,
    UnknownWorkspaceError,
)
from models.cache.tracking import Invalidations
from models.credential_cache import VerifiedCache
from models.credentials import hash_secret
from models.db.admin_keys import AdminIdentity, touch_admin_key, verify_admin_key
from models.db.base import utcnow
from models.db.config_errors import ConfigError, ForbiddenError, NotFoundError
from models.db.database import Database
from models.db.tables import Organization
from models.metrics import metrics
from models.settings import Settings
from scim.offload import in_thread

STRICT = ConfigDict(extra="forbid")
log = logging.getLogger("idsync.api")

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


@lru_cache(maxsize=4096)
def _one(result: Result) -> bytes:
    """One answer's body (answers are few distinct values: status, revision, reason)."""
    return orjson.dumps(render(result))


def _answer(result: Result) -> Response:
    return Response(_one(result), media_type="application/json")


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
    cluster, plain = split_cluster_url(url)
    options: dict[str, Any] = {
        "socket_timeout": CHECK_REDIS_TIMEOUT_S,
        "socket_connect_timeout": CHECK_REDIS_TIMEOUT_S,
    }
    if cluster:
        return RedisCluster.from_url(plain, **options)
    return aredis.Redis.from_url(
        plain, retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)), **options
    )


class Checker:
    """Check clients per organization over one ``redis.asyncio`` client (one per event
    loop: a client's connections belong to the loop that opened them), and the answers
    this process keeps under Redis's invalidation reports (``models.cache.local_answers``;
    a single Redis only: on a Redis Cluster every check asks Redis)."""

    def __init__(self, url: str, database: Database, *, local: bool = True) -> None:
        self.url = url
        self.database = database
        self.local_enabled = local and not split_cluster_url(url)[0]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._redis: aredis.Redis | RedisCluster | None = None
        self._clients: dict[str, AsyncCheckClient] = {}
        self.local: LocalAnswers | None = None
        self._watch: asyncio.Task[None] | None = None  # held: a task nobody holds may be collected

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self._redis = loop, check_redis_client(self.url)
        for kept in self._clients.values():
            kept.redis = self._redis
        if self.local_enabled:
            self.local = LocalAnswers()
            self.local.tracking = Invalidations(split_cluster_url(self.url)[1], self.local.changed)
            self._watch = loop.create_task(self.local.tracking.run())

    def _client(self, org_id: str) -> AsyncCheckClient:
        loop = asyncio.get_running_loop()
        if loop is not self._loop or self._redis is None:
            self._start(loop)
        found = self._clients.get(org_id)
        if found is not None:
            return found
        assert self._redis is not None
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

    def from_memory(
        self, org_id: str, queries: list[Query], min_revision: int | None
    ) -> list[Result] | None:
        """Every answer from process memory, or None (``run`` asks Redis)."""
        local = self.local
        return None if local is None else local.answers(org_id, queries, min_revision)

    async def run(
        self, org_id: str, queries: list[Query], min_revision: int | None
    ) -> list[Result]:
        """Answers read from Redis now (kept in memory for next time when they may be)."""
        client = self._client(org_id)
        local = self.local
        if local is not None:
            epoch = local.epoch(org_id)
        try:
            results = await client.batch(queries, min_revision=min_revision)
        except UnknownWorkspaceError:
            raise  # 422 on workspace, as /explain answers it
        except ValidationError as exc:
            raise HTTPException(400, str(exc)) from exc
        if local is not None:
            local.keep(org_id, epoch, queries, results)
        return results


# --- credentials -------------------------------------------------------------------------

SERVICE = "service"
SYNC_FIELDS = ("source", "destination", "action", "space_id", "id", "labels", "model")
CHECK_FIELDS = ("grant", "resource")


class CheckAuth:
    """Service token → every organization; admin key → its own organization only.

    Verified admin keys are remembered for ``ttl_s`` seconds (``VerifiedCache``, the
    SCIM tokens' mechanism and window); organization names met with the service token
    likewise (name → id). When a key's window ends under load, one lookup verifies it
    again for every request presenting it meanwhile, not one each.
    """

    def __init__(self, token: str | None, database: Database, ttl_s: float) -> None:
        self.token = token
        self.database = database
        self.keys: VerifiedCache[AdminIdentity] = VerifiedCache(ttl_s)
        self._touching: set[str] = set()
        self._verifying: dict[str, asyncio.Future[AdminIdentity | None]] = {}
        self.names: VerifiedCache[str] = VerifiedCache(ttl_s)

    def _verify(self, given: str) -> AdminIdentity | None:
        with self.database.read() as session:
            return verify_admin_key(session, given)

    def _touch(self, key_id: str) -> None:
        with self.database.write() as session:
            touch_admin_key(session, key_id)

    def _note_use(self, identity: AdminIdentity) -> None:
        """Record the key's use (``last_used_at``) at most once per
        ``LAST_USED_RESOLUTION``, in a thread the request does not wait for (a failed
        write only leaves ``last_used_at`` older)."""
        if not identity.use_is_stale() or identity.key_id in self._touching:
            return
        self._touching.add(identity.key_id)
        task = asyncio.get_running_loop().create_task(in_thread(self._touch, identity.key_id))
        task.add_done_callback(lambda done: self._touched(identity.key_id, done))

    def _touched(self, key_id: str, done: asyncio.Task[None]) -> None:
        self._touching.discard(key_id)
        if not done.cancelled() and done.exception() is not None:
            log.warning("admin key use not recorded: %s", type(done.exception()).__name__)

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
            key = hash_secret(given)
            pending = self._verifying.get(key)
            if pending is None:  # one lookup for every request that waits on this key
                pending = asyncio.ensure_future(self._verify_and_remember(given))
                self._verifying[key] = pending
                pending.add_done_callback(lambda _done: self._verifying.pop(key, None))
            found = await asyncio.shield(pending)
            if found is None:
                raise _unauthorized()
        return found

    async def _verify_and_remember(self, given: str) -> AdminIdentity | None:
        found = await in_thread(self._verify, given)
        if found is not None:
            self._note_use(found)
            # remembered as used now: the next touch is due a resolution from now
            self.keys.put(given, replace(found, last_used_at=utcnow()))
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


@lru_cache(maxsize=4096)
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

CHECK_PATHS: Final = frozenset(
    {"/api/v1/check", "/api/v1/check/sync", "/api/v1/check/spaces", "/api/v1/check/batch"}
)
"""The routes that parse their own body (``StrictJsonRoute``): the /api/v1 body guard
bounds their size and leaves the rest to them (``idsync.http_guards``)."""


def parse_body(model: type[BaseModel], raw: bytes) -> Any:
    """``raw`` validated as ``model`` straight from the bytes (pydantic's JSON parser:
    strict UTF-8, no surrogates, bounded nesting), or 422 naming the first bad field (a
    body that is not UTF-8 or nests deeper than ``json_text.MAX_DEPTH`` says so, as the
    /api/v1 body guard does for other routes); strings holding U+0000 are refused as the
    /api/v1 input guard does."""
    try:
        body = model.model_validate_json(raw)
    except PydanticValidationError as exc:
        problem = json_text.body_problem(raw)  # the body guard's words for these two
        if problem is not None:
            raise RequestValidationError(
                [{"loc": ("body",), "msg": problem, "type": "value_error"}]
            ) from None
        raise RequestValidationError(exc.errors(include_url=False, include_input=False)) from None
    refuse_unstorable_body(raw)
    return body


PARSED_MAX: Final = 10_000
"""Valid bodies a ``StrictJsonRoute`` remembers (services repeat their questions)..."""
PARSED_MAX_BYTES: Final = 1024
"""...if no longer than this (a single check's body is ~150 bytes; batches are not
remembered): at most ~10 MB of bodies per route, and the models made from them."""


class StrictJsonRoute(APIRoute):
    """A route called as ``endpoint(body, request)``, its body validated by
    ``parse_body`` against the endpoint's ``body`` annotation: no dependency solving
    and one parse of the body (the check path runs thousands of times a second); a body
    met before, byte for byte, is not validated again (the endpoints never change the
    models they are given). The OpenAPI entry is FastAPI's own, from the same
    signature; errors raised go through the app's exception handlers like any route's."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint
        model = get_type_hints(endpoint)["body"]
        parsed: dict[bytes, Any] = {}  # valid bodies met before (validation is pure)

        async def handle(request: Request) -> Response:
            raw = await request.body()
            body = parsed.get(raw)
            if body is None:
                body = parse_body(model, raw)
                if len(raw) <= PARSED_MAX_BYTES:
                    if len(parsed) >= PARSED_MAX:
                        parsed.clear()
                    parsed[raw] = body
            response: Response = await endpoint(body, request)
            return response

        return handle


class CheckMetrics:
    """``idsync_check_answers`` (by endpoint and outcome) and the check latency,
    children bound once (a labels() lookup per check would cost more than the count)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        if not enabled:
            return
        found = metrics()
        self._answers = {
            (e, o): found.check_answers.labels(e, o)
            for e in ENDPOINTS
            for o in ("allow", "deny", "unknown", "error")
        }
        self._duration = {e: found.check_duration.labels(e) for e in ENDPOINTS}
        self._from_memory = {e: found.check_from_memory.labels(e) for e in ENDPOINTS}

    def from_memory(self, endpoint: str, answers: int) -> None:
        if self.enabled:
            self._from_memory[endpoint].inc(answers)

    def record(self, endpoint: str, results: Sequence[Result] | None, started: float) -> None:
        if not self.enabled:
            return
        self._duration[endpoint].observe(time.perf_counter() - started)
        if results is None:
            self._answers[endpoint, "error"].inc()
            return
        for r in results:
            self._answers[endpoint, _outcome(r)].inc()


ENDPOINTS: Final = ("check", "sync", "spaces", "batch", "explain")
RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    401: {"description": "no or a wrong bearer token"},
    403: {"description": "an admin key asking about another organization"},
    422: {"description": "an unknown or missing field (field names it)"},
    503: {"description": "Redis unreachable or stalled (Retry-After: 1)"},
}


def _outcome(result: Result) -> str:
    if isinstance(result, SpacesAnswer):
        return "allow" if result.known else "unknown"
    return result.status


def _naming(exc: UnknownWorkspaceError, endpoint: str, queries: list[Query]) -> ValidationError:
    """The error as the request names the field: ``checks[<i>].workspace`` in a batch."""
    if endpoint != "batch":
        return exc
    at = next(i for i, q in enumerate(queries) if q.workspace == exc.workspace)
    return ValidationError(f"checks[{at}].workspace", exc.message)


def _add_strict_routes(
    router: APIRouter, routes: list[tuple[str, Callable[..., Any], type[BaseModel]]]
) -> None:
    for path, endpoint, shape in routes:
        router.add_api_route(
            path,
            endpoint,
            methods=["POST"],
            response_model=shape,
            responses=RESPONSES,
            route_class_override=StrictJsonRoute,
        )


def check_router(settings: Settings, database: Database) -> APIRouter:
    url = settings.resolved_cache_redis_url()
    router = APIRouter(
        prefix="/api/v1/check", tags=["check"], dependencies=[Depends(storable_input)]
    )
    checker = Checker(url, database, local=settings.check_local_answers) if url else None
    auth = CheckAuth(
        Settings.reveal(settings.check_api_token), database, settings.scim_token_cache_s
    )
    counted = CheckMetrics(settings.metrics_enabled)

    async def ask(
        endpoint: str, request: Request, org: str | None, queries: list[Query], rev: int | None
    ) -> list[Result]:
        started = time.perf_counter()
        results: list[Result] | None = None
        try:
            org_id = await auth.org(request, org)
            if checker is None:
                raise HTTPException(503, "no permission cache configured (REDIS_URL)")
            results = checker.from_memory(org_id, queries, rev)
            if results is not None:
                counted.from_memory(endpoint, len(results))
                return results
            results = await checker.run(org_id, queries, rev)
            return results
        except UnknownWorkspaceError as exc:
            raise _naming(exc, endpoint, queries) from None
        finally:
            counted.record(endpoint, results, started)

    async def check(body: CheckRequest, request: Request) -> Response:
        """``check(user, workspace, grant, resource?)``: allow / deny / unknown + revision."""
        results = await ask("check", request, body.org, [_query(body)], body.min_revision)
        return _answer(results[0])

    async def check_sync(body: SyncRequest, request: Request) -> Response:
        """``check_sync``: both sides from the same group."""
        results = await ask("sync", request, body.org, [_query(body)], body.min_revision)
        return _answer(results[0])

    async def visible_spaces(body: SpacesRequest, request: Request) -> Response:
        """Visible Spaces of a user in a workspace (a list, or "all")."""
        results = await ask("spaces", request, body.org, [_query(body)], body.min_revision)
        return _answer(results[0])

    async def batch(body: BatchRequest, request: Request) -> Response:
        """Up to 1000 mixed questions, answered from one Redis round trip."""
        queries = [_query(i) for i in body.checks]
        results = await ask("batch", request, body.org, queries, body.min_revision)
        return _json({"results": [render(r) for r in results]})

    _add_strict_routes(
        router,
        [
            ("", check, CheckAnswer),
            ("/sync", check_sync, CheckAnswer),
            ("/spaces", visible_spaces, SpacesAnswerOut),
            ("/batch", batch, BatchAnswer),
        ],
    )

    _add_explain_route(router, database, checker, auth, counted)
    return router


def _add_explain_route(
    router: APIRouter,
    database: Database,
    checker: Checker | None,
    auth: CheckAuth,
    counted: CheckMetrics,
) -> None:
    @router.post("/explain", response_model=ExplainAnswer, responses=RESPONSES)
    async def explain(body: ExplainIn, request: Request) -> Response:
        """Why: what ``POST /api/v1/explain`` answers (from SQL: groups, roles, bindings,
        rules, what is missing), next to the cache's answer to the same question. Takes
        the body of a check or of a sync check, like that endpoint."""
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
        started = time.perf_counter()
        cached = (await checker.run(org_id, [query], None))[0]
        counted.record("explain", [cached], started)
        return _json({"cache": render(cached), "explanation": _jsonable(explanation)})


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    return value
