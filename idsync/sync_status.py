"""Layer: app. Is an organization's sync healthy? One verdict per part, each with its reason.

Parts (docs/operations.md#sync-status):

- **each SCIM token** (from the SCIM request log): last request, the IdP its
  User-Agent names, requests by status over the last hour and day, the last error with
  its ``scimType``. ``failing`` when every write of some method (POST, PUT, PATCH,
  DELETE) in the last hour was rejected — the IdP's changes are not landing, even
  though idsync answers — or when most requests in the last hour failed; ``degraded``
  when more than ``DEGRADED_ERROR_RATIO`` failed, any answer was a 5xx, or the token
  has been silent for a day (or was never used).
- **the IdP pull** (``idp_pull_runs``): last run, duration, counts; ``failing`` when
  the last run failed (a page that failed midway fails the run: it applied nothing),
  ``degraded`` when the last good run is older than ``STALE_PULL_INTERVALS`` intervals.
  One part for the IDSYNC_IDP_* connection (``idp_pull``) and one per IdP connection of
  the organization (``idp_connections``, each over its own runs; dry runs and runs an
  operator's request found busy are shown, not judged).
- **the cache**: revision lag, oldest pending change, backlog; ``failing`` when it is
  not built or a change waits longer than ``FAILING_LAG_S``, ``degraded`` above
  ``DEGRADED_LAG_S``.

The organization's verdict is its worst part's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import redis
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from models.cache.connection import CacheRedis
from models.cache.layout import OrgKeys
from models.db.database import Database
from models.db.event_log import last_seq
from models.db.idp_connections import list_connections
from models.db.observability_tables import IdpPullRun, ScimRequestLog
from models.db.tables import Change, Organization, ScimToken
from models.db.webhooks import FAILING as WEBHOOK_FAILING
from models.db.webhooks import list_subscriptions, subscription_json

HEALTHY: Final = "healthy"
DEGRADED: Final = "degraded"
FAILING: Final = "failing"
_RANK: Final = {HEALTHY: 0, DEGRADED: 1, FAILING: 2}

WRITE_METHODS: Final = ("POST", "PUT", "PATCH", "DELETE")
DEGRADED_ERROR_RATIO: Final = 0.05
FAILING_ERROR_RATIO: Final = 0.5
SILENT_AFTER_S: Final = 86_400.0
DEGRADED_LAG_S: Final = 10.0
FAILING_LAG_S: Final = 60.0
STALE_PULL_INTERVALS: Final = 3


@dataclass(frozen=True)
class Verdict:
    state: str
    reason: str

    def as_json(self) -> dict[str, str]:
        return {"state": self.state, "reason": self.reason}


def worst(verdicts: list[Verdict]) -> Verdict:
    if not verdicts:
        return Verdict(HEALTHY, "nothing to report")
    top = max(verdicts, key=lambda v: _RANK[v.state])
    if top.state == HEALTHY:
        return Verdict(HEALTHY, "every part is healthy")
    return top


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="milliseconds")


def _error_text(row: Any) -> str:
    parts = [str(row.status)]
    if row.scim_type:
        parts.append(row.scim_type)
    if row.detail:
        parts.append(f"({row.detail[:200]})")
    return " ".join(parts)


def token_part(session: Session, org_id: str, now: datetime) -> list[dict[str, Any]]:
    day, hour = now - timedelta(days=1), now - timedelta(hours=1)
    t = ScimRequestLog
    tokens = session.execute(
        select(ScimToken.id, ScimToken.prefix, ScimToken.description, ScimToken.revoked_at)
        .where(ScimToken.org_id == org_id)
        .order_by(ScimToken.created_at)
    ).all()
    counts = session.execute(
        select(
            t.token_id,
            t.method,
            t.status,
            func.count(),
            func.sum(case((t.at >= hour, 1), else_=0)),
        )
        .where(t.org_id == org_id, t.at >= day)
        .group_by(t.token_id, t.method, t.status)
    ).all()
    out = []
    for token_id, prefix, description, revoked_at in tokens:
        mine = [c for c in counts if c[0] == token_id]
        last = session.execute(
            select(t.at, t.idp, t.user_agent)
            .where(t.org_id == org_id, t.token_id == token_id)
            .order_by(t.at.desc())
            .limit(1)
        ).first()
        last_error = session.execute(
            select(t.at, t.method, t.path, t.status, t.scim_type, t.detail, t.request_id)
            .where(t.org_id == org_id, t.token_id == token_id, t.status >= 400)
            .order_by(t.at.desc())
            .limit(1)
        ).first()
        if revoked_at is not None and last is None:
            continue  # a revoked token that never spoke: nothing to say
        by_status_day: dict[str, int] = {}
        by_status_hour: dict[str, int] = {}
        for _, _method, status, n_day, n_hour in mine:
            by_status_day[str(status)] = by_status_day.get(str(status), 0) + int(n_day)
            if n_hour:
                by_status_hour[str(status)] = by_status_hour.get(str(status), 0) + int(n_hour)
        verdict = _token_verdict(mine, last, last_error, revoked_at, now)
        out.append(
            {
                "token_id": token_id,
                "prefix": prefix,
                "description": description,
                "revoked": revoked_at is not None,
                "idp": last.idp if last else None,
                "user_agent": last.user_agent if last else None,
                "last_request_at": _iso(last.at) if last else None,
                "requests_last_hour": by_status_hour,
                "requests_last_day": by_status_day,
                "last_error": None
                if last_error is None
                else {
                    "at": _iso(last_error.at),
                    "method": last_error.method,
                    "path": last_error.path,
                    "status": last_error.status,
                    "scim_type": last_error.scim_type,
                    "detail": last_error.detail,
                    "request_id": last_error.request_id,
                },
                "verdict": verdict.as_json(),
            }
        )
    return out


def _token_verdict(
    counts: list[Any], last: Any, last_error: Any, revoked_at: datetime | None, now: datetime
) -> Verdict:
    if last is None:
        return Verdict(DEGRADED, "no request with this token yet")
    if revoked_at is not None:
        return Verdict(FAILING, "the token is revoked but still presented (401)")
    hour = [(method, int(status), int(n)) for _, method, status, _, n in counts if n]
    if not hour:
        silent_s = (now - last.at).total_seconds()
        if silent_s > SILENT_AFTER_S:
            return Verdict(DEGRADED, f"no request for {silent_s / 3600:.0f} h")
        return Verdict(HEALTHY, "no request in the last hour; none failing before")
    total = sum(n for _, _, n in hour)
    failed = sum(n for _, status, n in hour if status >= 400)
    server = sum(n for _, status, n in hour if status >= 500)
    last_err = f"; last: {_error_text(last_error)}" if last_error is not None else ""
    for method in WRITE_METHODS:
        tried = sum(n for m, _, n in hour if m == method)
        rejected = sum(n for m, status, n in hour if m == method and status >= 400)
        if tried and rejected == tried:
            return Verdict(
                FAILING,
                f"every {method} in the last hour was rejected ({rejected} of {tried}): the "
                f"IdP's changes are not applied{last_err}",
            )
    if failed / total > FAILING_ERROR_RATIO:
        return Verdict(FAILING, f"{failed} of {total} requests in the last hour failed{last_err}")
    if server:
        return Verdict(DEGRADED, f"{server} server errors (5xx) in the last hour{last_err}")
    if failed / total > DEGRADED_ERROR_RATIO:
        return Verdict(DEGRADED, f"{failed} of {total} requests in the last hour failed{last_err}")
    return Verdict(HEALTHY, f"{total} requests in the last hour, {failed} failed")


def pull_part(
    session: Session,
    org_id: str,
    now: datetime,
    interval_s: float | None,
    connection: str = "env",
) -> dict[str, Any] | None:
    """One IdP connection of the organization (None: it has never run)."""
    r = IdpPullRun
    runs = session.scalars(
        select(r)
        .where(
            r.org_id == org_id,
            r.connection == connection,
            r.dry_run.is_(False),
            r.status != "skipped",
        )
        .order_by(r.started_at.desc(), r.id.desc())
        .limit(20)
    ).all()
    if not runs:
        return None
    last = runs[0]
    finished = [x for x in runs if x.status not in ("running", "queued")]
    last_done = finished[0] if finished else None
    failures = [
        {
            "started_at": _iso(x.started_at),
            "error": x.error,
            "upstream_status": x.upstream_status,
        }
        for x in runs
        if x.status == "failed" and x.started_at >= now - timedelta(days=1)
    ]
    last_ok = next((x for x in finished if x.status == "ok"), None)
    if last_done is not None and last_done.status == "failed":
        status = (
            f" (upstream HTTP {last_done.upstream_status})" if last_done.upstream_status else ""
        )
        verdict = Verdict(
            FAILING, f"the last pull failed{status}, nothing was applied: {last_done.error}"
        )
    elif last_ok is None:
        verdict = Verdict(DEGRADED, "the first pull is still running")
    elif (
        interval_s
        and (now - last_ok.started_at).total_seconds() > STALE_PULL_INTERVALS * interval_s
    ):
        verdict = Verdict(DEGRADED, f"no successful pull since {_iso(last_ok.started_at)}")
    else:
        verdict = Verdict(HEALTHY, f"last pull ok at {_iso(last_ok.started_at)}")
    shown = last_done or last
    duration = (shown.finished_at - shown.started_at).total_seconds() if shown.finished_at else None
    return {
        "connection": shown.connection,
        "source": shown.source,
        "running": last.status in ("running", "queued"),
        "last_run": {
            "started_at": _iso(shown.started_at),
            "finished_at": _iso(shown.finished_at),
            "status": shown.status,
            "duration_s": duration,
            "users_created": shown.users_created,
            "users_updated": shown.users_updated,
            "users_deactivated": shown.users_deactivated,
            "groups_created": shown.groups_created,
            "groups_updated": shown.groups_updated,
            "members_added": shown.members_added,
            "members_removed": shown.members_removed,
            "error": shown.error,
            "upstream_status": shown.upstream_status,
        },
        "failures_last_day": failures,
        "verdict": verdict.as_json(),
    }


def connections_part(session: Session, org_id: str, now: datetime) -> list[dict[str, Any]]:
    """Every IdP connection of the organization, each judged over its own runs."""
    out = []
    for conn in list_connections(session, org_id):
        part = pull_part(session, org_id, now, conn.interval_s, conn.id) or {
            "connection": conn.id,
            "source": conn.kind,
            "running": False,
            "last_run": None,
            "failures_last_day": [],
            "verdict": (
                Verdict(DEGRADED, "no run yet")
                if conn.enabled
                else Verdict(HEALTHY, "disabled, never run")
            ).as_json(),
        }
        out.append({"name": conn.name, "kind": conn.kind, "enabled": conn.enabled, **part})
    return out


def webhooks_part(session: Session, org_id: str) -> list[dict[str, Any]]:
    """Every webhook subscription: ``failing`` once marked so (no more attempts until
    resumed), ``degraded`` while its current event is being retried."""
    end = last_seq(session, org_id)
    out = []
    for sub, _org in list_subscriptions(session, org_id):
        view = subscription_json(sub, end)
        if sub.state == WEBHOOK_FAILING:
            since = _iso(sub.failing_since)
            verdict = Verdict(FAILING, f"webhook {sub.id} failing since {since}: {sub.last_error}")
        elif sub.failing_since is not None:
            verdict = Verdict(DEGRADED, f"webhook {sub.id} retrying: {sub.last_error}")
        else:
            verdict = Verdict(HEALTHY, f"webhook {sub.id}: {view['backlog']} events behind")
        out.append({**view, "verdict": verdict.as_json()})
    return out


def cache_part(
    session: Session, org_id: str, revision: int, cache: CacheRedis | None, now_s: float
) -> dict[str, Any]:
    if cache is None:
        return {"verdict": Verdict(FAILING, "no cache Redis configured").as_json()}
    keys = OrgKeys.of(org_id)
    try:
        pipe = cache.pipeline(transaction=False)
        pipe.hmget(keys.meta, ["gen", "wm"])
        for lane in ("c", "r", "g"):
            pipe.zcard(keys.dirty(lane))
        (gen, wm), *backlogs = pipe.execute()
    except redis.RedisError as exc:
        return {"verdict": Verdict(FAILING, f"cache Redis unreachable: {exc}").as_json()}
    watermark = int(wm) if wm is not None else 0
    lag = max(0, revision - watermark)
    oldest = None
    if lag:
        oldest = session.execute(
            select(Change.created_at)
            .where(Change.org_id == org_id, Change.revision > watermark)
            .order_by(Change.revision)
            .limit(1)
        ).scalar_one_or_none()
    age = max(0.0, now_s - oldest.timestamp()) if oldest is not None else 0.0
    backlog = sum(int(b) for b in backlogs)
    if gen is None:
        verdict = Verdict(FAILING, "the cache is not built: checks answer unknown")
    elif age > FAILING_LAG_S:
        verdict = Verdict(FAILING, f"a change has waited {age:.0f} s for the cache ({lag} behind)")
    elif age > DEGRADED_LAG_S:
        verdict = Verdict(DEGRADED, f"a change has waited {age:.0f} s for the cache ({lag} behind)")
    else:
        verdict = Verdict(HEALTHY, f"{lag} revisions behind, oldest pending {age:.1f} s")
    return {
        "built": gen is not None,
        "revision": revision,
        "cache_revision": watermark,
        "revision_lag": lag,
        "oldest_pending_change_at": _iso(oldest),
        "oldest_pending_age_s": round(age, 3),
        "backlog": backlog,
        "verdict": verdict.as_json(),
    }


def sync_status(
    database: Database,
    org_id: str,
    cache: CacheRedis | None,
    *,
    pull_interval_s: float | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The organization's sync status (the admin API's and the CLI's JSON)."""
    now = now or datetime.now(UTC)
    with database.read() as session:
        org = session.get(Organization, org_id)
        if org is None:
            raise LookupError(org_id)
        tokens = token_part(session, org_id, now)
        pull = pull_part(session, org_id, now, pull_interval_s)
        connections = connections_part(session, org_id, now)
        webhooks = webhooks_part(session, org_id)
        cache_state = cache_part(session, org_id, int(org.revision), cache, now.timestamp())
        name = org.name
    verdicts = [Verdict(**t["verdict"]) for t in tokens]
    if pull is not None:
        verdicts.append(Verdict(**pull["verdict"]))
    verdicts += [Verdict(**c["verdict"]) for c in connections]
    verdicts += [Verdict(**w["verdict"]) for w in webhooks]
    verdicts.append(Verdict(**cache_state["verdict"]))
    return {
        "organization": name,
        "at": _iso(now),
        "verdict": worst(verdicts).as_json(),
        "scim_tokens": tokens,
        "idp_pull": pull,
        "idp_connections": connections,
        "webhooks": webhooks,
        "cache": cache_state,
    }
