"""Layer: app. The events API and webhook subscriptions of the caller's organization
(docs/events.md): ``GET /api/v1/events?after=…``, ``/webhooks`` (create, list, read,
remove, resume), a subscription's delivery log and redelivery of one event.

Every query is scoped to the admin key's organization: another organization's
subscription or event is a 404, as if it did not exist.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from idsync.admin_api.auth import DB, Admin
from idsync.admin_api.config_routes import ERRORS
from idsync.admin_api.secret_key import secret_box
from idsync.webhook_inputs import webhook_url
from models.db.config_errors import ConfigError, NotFoundError
from models.db.event_log import API_PAGE_MAX, envelope, event_at, events_after, last_seq
from models.db.webhooks import (
    NewSubscription,
    check_types,
    create_subscription,
    deliveries,
    delivery_json,
    get_subscription,
    list_subscriptions,
    remove_subscription,
    request_redelivery,
    resume_subscription,
    subscription_json,
)
from worker.events.directory import EVENT_TYPES

router = APIRouter(responses=ERRORS, tags=["events"])


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="Where events are POSTed (http:// or https://)")
    events: list[str] = Field(
        default_factory=list, description="Event types wanted; empty: every type"
    )
    secret: str = Field(
        description="Signing secret (16+ characters); write-only",
        json_schema_extra={"writeOnly": True},
    )
    description: str = Field(default="", max_length=200)


def _types(value: str | None) -> list[str]:
    if not value:
        return []
    return check_types([t.strip() for t in value.split(",") if t.strip()], EVENT_TYPES)


@router.get("/events")
def list_events(
    admin: Admin,
    db: DB,
    after: Annotated[
        str, Query(description="Cursor: the `next_cursor` of the previous page; 0 = start")
    ] = "0",
    limit: Annotated[int, Query(ge=1, le=API_PAGE_MAX)] = 100,
    types: Annotated[str | None, Query(description="Comma-separated event types")] = None,
) -> dict[str, Any]:
    """The organization's events after a cursor, oldest first (the log webhooks are
    delivered from). Keep `next_cursor` and ask again with it; `has_more` says whether
    another page is already there."""
    try:
        position = int(after)
    except ValueError:
        raise ConfigError("after", "not a cursor this API returned") from None
    wanted = _types(types)
    with db.read() as session:
        rows = events_after(session, admin.org_id, position, limit + 1, wanted)
        items = [envelope(e) for e in rows[:limit]]
    cursor = items[-1]["sequence"] if items else position
    return {"events": items, "next_cursor": str(cursor), "has_more": len(rows) > limit}


@router.post("/webhooks", status_code=201)
def add_webhook(body: WebhookIn, request: Request, admin: Admin, db: DB) -> dict[str, Any]:
    """Subscribe a URL to the organization's events from now on (the secret signs every
    delivery and is never returned)."""
    box = secret_box(request)
    url = webhook_url(body.url, request.app.state.settings)
    new = NewSubscription(url, check_types(body.events, EVENT_TYPES), body.secret, body.description)
    with db.write() as session:
        start = last_seq(session, admin.org_id)
        sub = create_subscription(session, admin.org_id, new, box, start_at=start)
        return subscription_json(sub, start)


@router.get("/webhooks")
def get_webhooks(admin: Admin, db: DB) -> dict[str, Any]:
    """Subscriptions with their state (`active`, `failing`), last attempt and backlog."""
    with db.read() as session:
        end = last_seq(session, admin.org_id)
        subs = list_subscriptions(session, admin.org_id)
        return {"webhooks": [subscription_json(s, end) for s, _ in subs]}


@router.get("/webhooks/{sub_id}")
def get_webhook(sub_id: str, admin: Admin, db: DB) -> dict[str, Any]:
    with db.read() as session:
        sub = get_subscription(session, admin.org_id, sub_id)
        return subscription_json(sub, last_seq(session, admin.org_id))


@router.delete("/webhooks/{sub_id}", status_code=204)
def delete_webhook(sub_id: str, admin: Admin, db: DB) -> Response:
    with db.write() as session:
        remove_subscription(session, admin.org_id, sub_id)
    return Response(status_code=204)


@router.post("/webhooks/{sub_id}/resume")
def resume_webhook(sub_id: str, request: Request, admin: Admin, db: DB) -> dict[str, Any]:
    """A `failing` subscription tries again from the event it stopped at."""
    with db.write() as session:
        sub = resume_subscription(session, admin.org_id, sub_id)
        out = subscription_json(sub, last_seq(session, admin.org_id))
    _wake(request, admin.org_id, sub_id)
    return out


@router.get("/webhooks/{sub_id}/deliveries")
def get_deliveries(
    sub_id: str, admin: Admin, db: DB, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, Any]:
    """The delivery log, newest first: status, attempts, last response code and error."""
    with db.read() as session:
        rows = deliveries(session, admin.org_id, sub_id, limit)
        return {"deliveries": [delivery_json(d) for d in rows]}


@router.post("/webhooks/{sub_id}/deliveries/{event_id}/redeliver", status_code=202)
def redeliver(sub_id: str, event_id: str, request: Request, admin: Admin, db: DB) -> dict[str, Any]:
    """Send one event to the subscription again (once, with its own id; out of order)."""
    with db.write() as session:
        event = event_at(session, admin.org_id, event_id)
        if event is None:
            raise NotFoundError("event_id", f"no event {event_id!r}")
        row = request_redelivery(
            session, admin.org_id, sub_id, event.seq, event.event_id, event.type
        )
        out = delivery_json(row)
    _wake(request, admin.org_id, sub_id)
    return out


def _wake(request: Request, org_id: str, sub_id: str) -> None:
    hook = getattr(request.app.state, "events_hook", None)
    if hook is not None:  # else the events sweep sends it
        hook.wake_delivery(org_id, sub_id)
