"""Layer: app. Sync health and the SCIM request log of the caller's organization (``GET
/api/v1/sync/status``, ``GET /api/v1/scim/log``; docs/admin-api.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from idsync.admin_api.auth import DB, Admin
from idsync.admin_api.config_routes import ERRORS
from idsync.sync_status import sync_status
from models.cache.connection import CacheRedis, cache_redis
from models.db.config_errors import ConfigError
from models.db.request_log import MAX_LIMIT, LogQuery, parse_status, parse_time, read_log
from models.settings import Settings

router = APIRouter(responses=ERRORS, tags=["sync health"])
REDIS_TIMEOUT_S = 2.0


def _cache(request: Request) -> CacheRedis | None:
    client: CacheRedis | None = getattr(request.app.state, "status_cache", None)
    if client is None:
        settings: Settings = request.app.state.settings
        url = settings.resolved_cache_redis_url()
        if url is None:
            return None
        client = cache_redis(
            url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
        )
        request.app.state.status_cache = client
    return client


@router.get("/sync/status")
def get_sync_status(request: Request, admin: Admin, db: DB) -> dict[str, Any]:
    """Per SCIM token (requests by status over the last hour and day, last error with
    its scimType, the IdP from its User-Agent), the IdP pull (last run, counts,
    failures) and the cache (revision lag, oldest pending change, backlog): each with a
    verdict, `healthy`, `degraded` or `failing`, and its reason; `verdict` is the worst."""
    settings: Settings = request.app.state.settings
    return sync_status(
        db,
        admin.org_id,
        _cache(request),
        pull_interval_s=settings.idp_pull_interval_s if settings.idp_org == admin.org_id else None,
    )


def _parsed(field: str, value: str | None, parse: Any) -> Any:
    if value is None:
        return None
    try:
        return parse(value)
    except ValueError as exc:
        raise ConfigError(field, str(exc)) from None


@router.get("/scim/log")
def get_scim_log(
    admin: Admin,
    db: DB,
    since: Annotated[
        str | None, Query(description="ISO 8601 time, or an age: 90m, 24h, 2d")
    ] = None,
    until: Annotated[str | None, Query(description="ISO 8601 time, or an age")] = None,
    status: Annotated[str | None, Query(description="404, or 2xx, 4xx, 5xx, error")] = None,
    user: Annotated[
        str | None, Query(description="user id: its requests, group writes naming it")
    ] = None,
    group: Annotated[str | None, Query(description="group id")] = None,
    token: Annotated[str | None, Query(description="SCIM token id")] = None,
    idp: Annotated[str | None, Query(description="okta, entra, onelogin, …")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> dict[str, Any]:
    """The organization's SCIM requests, newest first: method, path, query, status,
    scimType, duration, token, IdP, request id, the change revision produced and the
    body as received with secrets masked."""
    query = LogQuery(
        org_id=admin.org_id,
        since=_parsed("since", since, parse_time),
        until=_parsed("until", until, parse_time),
        status=_parsed("status", status, parse_status),
        user_id=user,
        group_id=group,
        token_id=token,
        idp=idp,
        limit=limit,
    )
    entries = read_log(db, query)
    return {"entries": entries, "count": len(entries)}
