"""Layer: app (CLI). ``idsync sync status`` and ``idsync scim log|prune``: sync health and the SCIM
request log from the command line (the same answers as the admin API)."""

from __future__ import annotations

import json
from typing import Any

import click

from idsync.cli_support import cli_database, cli_org_id, cli_settings
from idsync.sync_status import sync_status
from models.cache.connection import cache_redis
from models.db.request_log import LogQuery, parse_status, parse_time, prune, read_log

REDIS_TIMEOUT_S = 2.0


def _parse(option: str, value: str | None, parse: Any) -> Any:
    if value is None:
        return None
    try:
        return parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


@click.group("sync")
def sync_group() -> None:
    """Sync health per organization."""


@sync_group.command("status")
@click.option("--org", "org_name", required=True, help="Organization name.")
@click.option("--json", "as_json", is_flag=True, help="The admin API's JSON.")
def sync_status_cmd(org_name: str, as_json: bool) -> None:
    """Per SCIM token, the IdP pull and the cache: healthy, degraded or failing, and why.
    Exits 1 when the organization's verdict is failing."""
    settings = cli_settings()
    database = cli_database(settings)
    url = settings.resolved_cache_redis_url()
    cache = (
        cache_redis(url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=2.0)
        if url
        else None
    )
    try:
        org_id = cli_org_id(database, org_name)
        interval = settings.idp_pull_interval_s if settings.idp_org == org_id else None
        status = sync_status(database, org_id, cache, pull_interval_s=interval)
    finally:
        database.dispose()
        if cache is not None:
            cache.close()
    if as_json:
        click.echo(json.dumps(status, indent=2))
    else:
        _print_status(status)
    if status["verdict"]["state"] == "failing":
        raise SystemExit(1)


def _line(part: str, verdict: dict[str, str]) -> str:
    return f"{part:<28} {verdict['state']:<9} {verdict['reason']}"


def _print_status(status: dict[str, Any]) -> None:
    click.echo(_line(f"organization {status['organization']}", status["verdict"]))
    for token in status["scim_tokens"]:
        label = f"token {token['prefix']} ({token['idp'] or '-'})"
        click.echo(_line(label, token["verdict"]))
        click.echo(
            f"    last request {token['last_request_at'] or 'never'}; "
            f"last hour {token['requests_last_hour']}; last day {token['requests_last_day']}"
        )
        if token["last_error"]:
            err = token["last_error"]
            click.echo(
                f"    last error {err['at']} {err['method']} {err['path']} -> {err['status']} "
                f"{err['scim_type'] or ''} {err['detail'] or ''}".rstrip()
            )
    pulls = [status["idp_pull"]] if status["idp_pull"] is not None else []
    for pull in [*pulls, *status.get("idp_connections", [])]:
        label = pull.get("name") or pull["connection"]
        click.echo(_line(f"idp pull ({label})", pull["verdict"]))
        run = pull["last_run"]
        if run is None:
            continue
        click.echo(
            f"    last run {run['started_at']} {run['status']} in {run['duration_s']} s: "
            f"users +{run['users_created']} ~{run['users_updated']} "
            f"-{run['users_deactivated']}, groups +{run['groups_created']} "
            f"~{run['groups_updated']}, members +{run['members_added']} "
            f"-{run['members_removed']}"
        )
    for hook in status.get("webhooks", []):
        click.echo(_line(f"webhook {hook['id'][:8]}", hook["verdict"]))
    cache = status["cache"]
    click.echo(_line("cache", cache["verdict"]))
    if "revision_lag" in cache:
        click.echo(
            f"    revision {cache['revision']}, cache at {cache['cache_revision']}, "
            f"oldest pending {cache['oldest_pending_age_s']} s, backlog {cache['backlog']}"
        )


@click.group("scim")
def scim_group() -> None:
    """The SCIM request log."""


@scim_group.command("log")
@click.option("--org", "org_name", required=True, help="Organization name.")
@click.option("--since", default=None, help="ISO 8601 time or an age (90m, 24h, 2d).")
@click.option("--until", default=None, help="ISO 8601 time or an age.")
@click.option("--status", default=None, help="404, or 2xx, 4xx, 5xx, error.")
@click.option("--user", "user_id", default=None, help="A user id (also group writes naming it).")
@click.option("--group", "group_id", default=None, help="A group id.")
@click.option("--token", "token_id", default=None, help="A SCIM token id.")
@click.option("--idp", default=None, help="okta, entra, onelogin, jumpcloud, google, other.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def scim_log_cmd(
    org_name: str,
    since: str | None,
    until: str | None,
    status: str | None,
    user_id: str | None,
    group_id: str | None,
    token_id: str | None,
    idp: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """SCIM requests, oldest first (the newest LIMIT that match), bodies with secrets
    masked: e.g. `idsync scim log --org acme --idp entra --user ID --since 2d`."""
    settings = cli_settings()
    database = cli_database(settings)
    try:
        query = LogQuery(
            org_id=cli_org_id(database, org_name),
            since=_parse("--since", since, parse_time),
            until=_parse("--until", until, parse_time),
            status=_parse("--status", status, parse_status),
            user_id=user_id,
            group_id=group_id,
            token_id=token_id,
            idp=idp,
            limit=limit,
        )
        entries = read_log(database, query)
    finally:
        database.dispose()
    for e in reversed(entries):
        if as_json:
            click.echo(json.dumps(e))
            continue
        query_text = f"?{e['query']}" if e["query"] else ""
        outcome = f"{e['status']} {e['scim_type'] or ''}".rstrip()
        revision = f" rev {e['revision']}" if e["revision"] is not None else ""
        click.echo(
            f"{e['at']}  {e['idp']:<8} {e['method']:<6} {e['path']}{query_text}  -> "
            f"{outcome}  {e['duration_ms']:.1f} ms{revision}  token {e['token_id'] or '-'}  "
            f"req {e['request_id'] or '-'}"
        )
        if e["detail"]:
            click.echo(f"    detail: {e['detail']}")
        if e["body"]:
            click.echo(f"    body: {e['body']}")


@scim_group.command("prune")
def scim_prune_cmd() -> None:
    """Prune the SCIM request log now (the beat does it every
    IDSYNC_SCIM_LOG_PRUNE_INTERVAL_S): rows past the retention, the oldest beyond the
    row limit."""
    settings = cli_settings()
    database = cli_database(settings)
    try:
        removed = prune(
            database,
            retention_s=settings.scim_log_retention_days * 86_400,
            max_rows=settings.scim_log_max_rows,
        )
    finally:
        database.dispose()
    click.echo(f"{removed} rows pruned")
