"""HTTP check API (for services not written in Python): ``/api/v1/check…``.

Every answer comes from the Redis permission cache through ``CheckClient`` (one Redis
round trip per request, batches included) and carries ``status`` (allow / deny /
unknown), ``allowed`` and the cache ``revision``. ``explain`` is computed from SQL.

Auth (always required): ``Authorization: Bearer <token>`` where the token is either
the service token ``IDSYNC_CHECK_API_TOKEN`` (internal services; any organization) or an
organization admin key (that organization only: asking about another one is 403).

When Redis (or, for admin keys and ``explain``, PostgreSQL) cannot answer, a request is
503 with ``Retry-After`` in the /api/v1 error shape (``idsync.admin_api.errors``), never
a guess: the Redis client has connect and read timeouts (``CHECK_REDIS_TIMEOUT_S``).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import redis
from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field
from redis.backoff import NoBackoff
from redis.retry import Retry

from idsync.input_guard import storable_input
from idsync.settings import Settings
from models.access.errors import ValidationError
from models.access.inputs import ResourceRef
from models.access.refs import SyncRef
from models.cache.client import (
    Answer,
    Check,
    CheckClient,
    Query,
    Result,
    SpacesAnswer,
    SpacesQuery,
    SyncCheck,
)
from models.cache.connection import CacheRedis, cache_redis
from models.db.admin_keys import verify_admin_key
from models.db.database import Database
from scim.offload import in_thread


class Resource(BaseModel):
    type: str
    id: str | None = None
    space_id: str | None = None
    subsets: dict[str, list[str]] | None = None
    labels: dict[str, str] | None = None

    def ref(self) -> ResourceRef:
        subsets = None
        if self.subsets is not None:
            subsets = frozenset((k, v) for k, vs in self.subsets.items() for v in vs)
        labels = None if self.labels is None else frozenset(self.labels.items())
        return ResourceRef(self.type, self.id, self.space_id, labels, subsets)


class CheckBody(BaseModel):
    type: Literal["check"] = "check"
    user: str
    workspace: str
    grant: str
    resource: Resource | None = None


class SyncBody(BaseModel):
    type: Literal["sync"] = "sync"
    user: str
    workspace: str
    source: Resource | str
    destination: Resource | str
    action: str
    space_id: str | None = None
    id: str | None = None
    """Legacy: the sync's id (its registered labels feed label conditions)."""
    labels: dict[str, str] | None = None
    """Legacy: the sync's labels (win over the registered ones)."""
    model: Resource | str | None = None

    def sync(self) -> SyncRef:
        src = self.source.ref() if isinstance(self.source, Resource) else self.source
        dst = self.destination.ref() if isinstance(self.destination, Resource) else self.destination
        model = self.model.ref() if isinstance(self.model, Resource) else self.model
        labels = None if self.labels is None else frozenset(self.labels.items())
        return SyncRef.of(src, dst, self.space_id, id=self.id, labels=labels, model=model)


class SpacesBody(BaseModel):
    type: Literal["spaces"] = "spaces"
    user: str
    workspace: str


Item = Annotated[CheckBody | SyncBody | SpacesBody, Field(discriminator="type")]


class SingleRequest(BaseModel):
    org: str
    min_revision: int | None = None


class CheckRequest(SingleRequest, CheckBody):
    pass


class SyncRequest(SingleRequest, SyncBody):
    pass


class SpacesRequest(SingleRequest, SpacesBody):
    pass


class BatchRequest(BaseModel):
    org: str
    min_revision: int | None = None
    checks: list[Item] = Field(max_length=1000)


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


CHECK_REDIS_TIMEOUT_S = 1.0
"""Connect and read timeout of the check API's Redis client (a check's round trip takes
tens of microseconds; a Redis that has not answered in a second is treated as down)."""
SUSPECT_S = 5.0
"""After a Redis error, checks run in the thread pool for this long (see `Checker`)."""


def check_redis_client(url: str) -> CacheRedis:
    """Bounded timeouts; one immediate retry on a connection error only (a pooled
    connection closed by a Redis restart), none on a timeout (a stall costs one)."""
    return cache_redis(
        url,
        socket_timeout=CHECK_REDIS_TIMEOUT_S,
        socket_connect_timeout=CHECK_REDIS_TIMEOUT_S,
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
    )


class Checker:
    """Check clients per organization over one Redis connection pool.

    A plain check is one Redis round trip and runs on the event loop. While Redis is
    suspect (it failed in the last `SUSPECT_S` seconds), checks run in the thread pool
    instead: a stalled Redis then blocks the event loop for one timeout per `SUSPECT_S`
    at most, not one timeout per request.
    """

    def __init__(self, client: CacheRedis, database: Database) -> None:
        self.redis = client
        self.database = database
        self._clients: dict[str, CheckClient] = {}
        self.suspect_until = 0.0

    def client(self, org_id: str) -> CheckClient:
        c = self._clients.get(org_id)
        if c is None:
            try:
                c = CheckClient(self.redis, org_id, database=self.database)
            except ValueError as exc:
                raise HTTPException(400, f"org: {exc}") from exc
            if len(self._clients) > 10_000:
                self._clients.clear()
            self._clients[org_id] = c
        return c

    def run(self, org_id: str, queries: list[Query], min_revision: int | None) -> list[Result]:
        try:
            return self.client(org_id).batch(queries, min_revision=min_revision)
        except ValidationError as exc:
            raise HTTPException(400, str(exc)) from exc
        except (redis.ConnectionError, redis.TimeoutError):  # 503 (admin_api.errors)
            self.suspect_until = time.monotonic() + SUSPECT_S
            raise

    async def arun(
        self, org_id: str, queries: list[Query], min_revision: int | None
    ) -> list[Result]:
        """One Redis round trip (tens of microseconds) runs on the event loop; a request
        that may wait for freshness or fall back to SQL, or that would meet a suspect
        Redis, goes to the thread pool."""
        if min_revision is None and time.monotonic() >= self.suspect_until:
            return self.run(org_id, queries, None)
        return await in_thread(self.run, org_id, queries, min_revision)


class CheckAuth:
    """Service token → every organization; admin key → its own organization only."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.token = Settings.reveal(settings.check_api_token)
        self.database = database

    def authorize(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        given = given.strip()
        unauthorized = HTTPException(
            401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"}
        )
        if scheme.lower() != "bearer" or not given:
            raise unauthorized
        if self.token and hmac.compare_digest(given.encode(), self.token.encode()):
            request.state.check_org_scope = None
            return
        with self.database.read() as session:
            identity = verify_admin_key(session, given)
        if identity is None:
            raise unauthorized
        request.state.check_org_scope = identity.org_id

    @staticmethod
    def scoped(request: Request, org: str) -> str:
        scope: str | None = getattr(request.state, "check_org_scope", None)
        if scope is not None and scope != org:
            raise HTTPException(403, "this admin key belongs to another organization")
        return org


def check_router(settings: Settings, database: Database) -> APIRouter:
    url = settings.resolved_cache_redis_url()
    router = APIRouter(
        prefix="/api/v1/check", tags=["check"], dependencies=[Depends(storable_input)]
    )
    state: dict[str, Checker] = {}

    def checker() -> Checker:
        if "c" not in state:
            if not url:
                raise HTTPException(503, "no permission cache configured (REDIS_URL)")
            state["c"] = Checker(check_redis_client(url), database)
        return state["c"]

    guard = CheckAuth(settings, database)
    authorize, scoped = guard.authorize, CheckAuth.scoped

    auth = [Depends(authorize)]

    @router.post("", dependencies=auth)
    async def check(body: CheckRequest, request: Request) -> dict[str, Any]:
        """``check(user, workspace, grant, resource?)``: allow / deny / unknown + revision."""
        org = scoped(request, body.org)
        return render((await checker().arun(org, [_query(body)], body.min_revision))[0])

    @router.post("/sync", dependencies=auth)
    async def check_sync(body: SyncRequest, request: Request) -> dict[str, Any]:
        """``check_sync``: both sides from the same group."""
        org = scoped(request, body.org)
        return render((await checker().arun(org, [_query(body)], body.min_revision))[0])

    @router.post("/spaces", dependencies=auth)
    async def visible_spaces(body: SpacesRequest, request: Request) -> dict[str, Any]:
        """Visible Spaces of a user in a workspace (a list, or "all")."""
        org = scoped(request, body.org)
        return render((await checker().arun(org, [_query(body)], body.min_revision))[0])

    @router.post("/batch", dependencies=auth)
    async def batch(body: BatchRequest, request: Request) -> dict[str, Any]:
        """Up to 1000 mixed questions, answered from one Redis round trip."""
        org = scoped(request, body.org)
        results = await checker().arun(org, [_query(i) for i in body.checks], body.min_revision)
        return {"results": [render(r) for r in results]}

    @router.post("/explain", dependencies=auth)
    def explain(body: CheckRequest, request: Request) -> dict[str, Any]:
        """Why: groups, roles, bindings and rules (from SQL), next to the cache's answer."""
        scoped(request, body.org)
        from models.access.access_model import AccessModel
        from models.db.config_loader import load_org_config, load_user_inputs

        cached = checker().run(body.org, [_query(body)], None)[0]
        with database.read() as session:
            config = load_org_config(session, body.org)
            user = load_user_inputs(session, body.org, [body.user]).get(body.user)
        ref = None if body.resource is None else body.resource.ref()
        try:
            explanation = AccessModel(config).explain(user, body.workspace, body.grant, ref)
        except ValidationError as exc:
            raise HTTPException(400, str(exc)) from exc
        return {"cache": render(cached), "explanation": _jsonable(explanation.to_dict())}

    return router


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    return value
