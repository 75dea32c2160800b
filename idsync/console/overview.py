"""Layer: app. The overview page: the organization's sync health, as ``GET
/api/v1/sync/status`` and ``idsync sync status`` answer it (``idsync.sync_status``):
each SCIM token and IdP connection with its verdict and reason, the cache's lag and
backlog, and the recent errors."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from idsync.console.context import Console
from idsync.console.sessions import ConsoleSession
from idsync.sync_status import sync_status


def pulls_of(status: dict[str, Any]) -> list[dict[str, Any]]:
    """The organization's IdP connections, and the IDSYNC_IDP_* one when it pulls here."""
    pulls = list(status["idp_connections"])
    if status.get("idp_pull"):
        env = status["idp_pull"]
        pulls.append({**env, "name": "env (IDSYNC_IDP_*)", "kind": env["source"]})
    return pulls


def recent_errors(status: dict[str, Any]) -> list[dict[str, Any]]:
    """The last error of each token and the failed pulls of the last day, newest first."""
    errors: list[dict[str, Any]] = []
    for token in status["scim_tokens"]:
        err = token.get("last_error")
        if err:
            errors.append(
                {
                    "at": err["at"],
                    "where": f"SCIM token {token['prefix']}",
                    "what": f"{err['method']} {err['path']}: {err['status']}"
                    + (f" {err['scim_type']}" if err.get("scim_type") else "")
                    + (f" ({err['detail']})" if err.get("detail") else ""),
                }
            )
    for pull in pulls_of(status):
        for failure in pull.get("failures_last_day") or []:
            upstream = failure.get("upstream_status")
            errors.append(
                {
                    "at": failure["started_at"],
                    "where": f"IdP connection {pull.get('name') or pull['connection']}",
                    "what": (f"upstream HTTP {upstream}: " if upstream else "")
                    + str(failure["error"]),
                }
            )
    return sorted(errors, key=lambda e: str(e["at"]), reverse=True)


async def overview(request: Request, console: Console, session: ConsoleSession) -> Response:
    settings = console.settings
    status = await run_in_threadpool(
        sync_status,
        console.db,
        session.org_id,
        console.cache,
        pull_interval_s=settings.idp_pull_interval_s
        if settings.idp_org == session.org_id
        else None,
    )
    return console.render(
        request,
        "overview.html",
        title="Overview",
        session=session,
        status=status,
        pulls=pulls_of(status),
        errors=recent_errors(status),
    )
