"""Layer: app. IdP connections of the caller's organization (``/api/v1/connections``): create,
read, change, remove, run now (or dry-run) on a worker, and the recorded runs
(docs/admin-api.md). Every query is scoped to the admin key's organization; the
credential is write-only (``secret``): no response carries it."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from idsync.admin_api.auth import DB, Admin
from idsync.admin_api.config_routes import ERRORS
from idsync.admin_api.secret_key import secret_box
from idsync.admin_api.worker_link import SEND_ERRORS, Worker, broker_unavailable, no_worker
from idsync.connection_inputs import ConnectionIn, ConnectionPatch, checked_spec
from models.db.config_errors import NotFoundError
from models.db.idp_connections import (
    create_connection,
    get_connection,
    list_connections,
    remove_connection,
    spec_of,
    update_connection,
    view,
)
from models.db.pull_runs import get_run, recent_runs, run_view
from worker.connection_tasks import send_connection_run
from worker.idp.runs import queue_run

router = APIRouter(responses=ERRORS, tags=["IdP connections"])


class ConnectionOut(BaseModel):
    id: str
    organization: str
    name: str
    kind: str
    url: str
    client_id: str | None
    token_url: str | None
    scope: str | None
    has_secret: bool
    interval_s: int
    deactivate_missing: bool
    rate_limit_per_s: float | None
    enabled: bool
    next_run_at: str | None
    running: bool
    created_at: str


@router.get("/connections", response_model=list[ConnectionOut])
def connections_list(admin: Admin, db: DB) -> list[dict[str, Any]]:
    with db.read() as session:
        return [view(session, c) for c in list_connections(session, admin.org_id)]


@router.post("/connections", status_code=201, response_model=ConnectionOut)
def connection_create(body: ConnectionIn, request: Request, admin: Admin, db: DB) -> dict[str, Any]:
    """A new connection, due at once. `secret` is stored encrypted and never returned."""
    secret = body.secret.get_secret_value() if body.secret else None
    box = secret_box(request) if secret else None
    with db.write() as session:
        spec = checked_spec(body.spec(), request.app.state.settings)
        conn = create_connection(session, admin.org_id, spec, secret, box)
        return view(session, conn)


@router.get("/connections/{connection_id}", response_model=ConnectionOut)
def connection_get(connection_id: str, admin: Admin, db: DB) -> dict[str, Any]:
    with db.read() as session:
        return view(session, get_connection(session, admin.org_id, connection_id))


@router.patch("/connections/{connection_id}", response_model=ConnectionOut)
def connection_patch(
    connection_id: str, body: ConnectionPatch, request: Request, admin: Admin, db: DB
) -> dict[str, Any]:
    given = body.model_dump(exclude_unset=True, exclude={"secret"})
    secret = body.secret.get_secret_value() if body.secret else None
    box = secret_box(request) if secret else None
    with db.write() as session:
        conn = get_connection(session, admin.org_id, connection_id)
        wanted = checked_spec(replace(spec_of(conn), **given), request.app.state.settings)
        update_connection(session, conn, wanted, secret, box)
        return view(session, conn)


@router.delete("/connections/{connection_id}", status_code=204)
def connection_delete(connection_id: str, admin: Admin, db: DB) -> Response:
    with db.write() as session:
        remove_connection(session, admin.org_id, connection_id)
    return Response(status_code=204)


@router.post("/connections/{connection_id}/run", status_code=202)
def connection_run(
    connection_id: str,
    admin: Admin,
    db: DB,
    worker: Worker,
    dry_run: Annotated[bool, Query(description="count what would change; write nothing")] = False,
) -> dict[str, Any]:
    """Run the connection now on a worker: answers at once with the queued run; follow
    it at `GET /connections/{id}/runs/{run_id}` (`status`: queued, running, ok, failed,
    skipped)."""
    with db.read() as session:
        conn = get_connection(session, admin.org_id, connection_id)
        org_id, kind = conn.org_id, conn.kind
    if worker.celery is None:
        raise no_worker()
    run_id = queue_run(db, org_id, kind, connection_id, dry_run=dry_run)
    try:
        send_connection_run(worker.celery, connection_id, queued=run_id, dry_run=dry_run)
    except SEND_ERRORS:
        with db.write() as session:
            run = get_run(session, run_id)
            if run is not None:
                session.delete(run)
        raise broker_unavailable() from None
    with db.read() as session:
        run = get_run(session, run_id)
        assert run is not None
        return run_view(run)


@router.get("/connections/{connection_id}/runs")
def connection_runs(
    connection_id: str,
    admin: Admin,
    db: DB,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
) -> dict[str, Any]:
    """The connection's recorded runs, newest first (kept IDSYNC_IDP_RUN_RETENTION_DAYS)."""
    with db.read() as session:
        get_connection(session, admin.org_id, connection_id)
        runs = [run_view(r) for r in recent_runs(session, admin.org_id, connection_id, limit)]
    return {"runs": runs, "count": len(runs)}


@router.get("/connections/{connection_id}/runs/{run_id}")
def connection_run_get(connection_id: str, run_id: int, admin: Admin, db: DB) -> dict[str, Any]:
    with db.read() as session:
        get_connection(session, admin.org_id, connection_id)
        run = get_run(session, run_id)
        if run is None or run.org_id != admin.org_id or run.connection != connection_id:
            raise NotFoundError("run", f"no run {run_id} of this connection")
        return run_view(run)
