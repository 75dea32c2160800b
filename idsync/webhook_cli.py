"""Layer: app (CLI). ``idsync webhook add|list|remove|deliveries|redeliver|resume``
(stable; docs/events.md). The signing secret is read from an environment variable named on
the command line, never from argv, and never printed."""

from __future__ import annotations

import json
import os

import click

from idsync.cli_support import cli_database, cli_org_id, cli_settings
from idsync.webhook_inputs import webhook_url
from models.db.config_errors import ConfigError
from models.db.event_log import event_at, last_seq
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
from models.secret_box import SecretKeyError
from worker.events.directory import EVENT_TYPES


def _fail_on_config_error(exc: ConfigError | SecretKeyError) -> click.ClickException:
    return click.ClickException(str(exc))


@click.group("webhook")
def webhook_group() -> None:
    """Webhook subscriptions: signed, ordered deliveries of an organization's events."""


@webhook_group.command("add")
@click.option("--org", "org_name", required=True, help="Organization name.")
@click.option("--url", required=True, help="Where events are POSTed.")
@click.option(
    "--secret-env",
    required=True,
    metavar="VAR",
    help="Environment variable holding the signing secret (16+ characters).",
)
@click.option("--events", default="", help="Comma-separated event types (default: all).")
@click.option("--description", default="", help="What the subscription is for.")
def webhook_add(org_name: str, url: str, secret_env: str, events: str, description: str) -> None:
    """Subscribe URL to the organization's events from now on; the id is the last line."""
    secret = os.environ.get(secret_env, "")
    if not secret:
        raise click.ClickException(f"environment variable {secret_env} is not set or empty")
    settings = cli_settings()
    database = cli_database(settings)
    org_id = cli_org_id(database, org_name)
    try:
        box = settings.secret_box()
        types = check_types([t.strip() for t in events.split(",") if t.strip()], EVENT_TYPES)
        with database.write() as session:
            new = NewSubscription(webhook_url(url, settings), types, secret, description)
            start = last_seq(session, org_id)
            sub_id = create_subscription(session, org_id, new, box, start_at=start).id
    except (ConfigError, SecretKeyError) as exc:
        raise _fail_on_config_error(exc) from None
    click.echo(
        f"webhook for {org_name}: {url} ({', '.join(types) or 'every event type'})", err=True
    )
    click.echo(sub_id)


@webhook_group.command("list")
@click.option("--org", "org_name", default=None, help="Only this organization's.")
@click.option("--json", "as_json", is_flag=True)
def webhook_list(org_name: str | None, as_json: bool) -> None:
    """Subscriptions: state (active, failing), last attempt and response, backlog."""
    database = cli_database(cli_settings())
    org_id = None if org_name is None else cli_org_id(database, org_name)
    with database.read() as session:
        rows = [
            (subscription_json(s, last_seq(session, s.org_id)), name)
            for s, name in list_subscriptions(session, org_id)
        ]
    if as_json:
        click.echo(json.dumps([{**view, "org": name} for view, name in rows], indent=2))
        return
    click.echo("id\torganization\tstate\turl\tevents\tbacklog\tlast_status\tlast_success\terror")
    for view, name in rows:
        fields = [
            view["id"],
            name,
            view["state"],
            view["url"],
            ",".join(view["events"]) or "*",
            str(view["backlog"]),
            str(view["last_status_code"] or "-"),
            view["last_success_at"] or "-",
            (view["last_error"] or "-")[:80],
        ]
        click.echo("\t".join(fields))


@webhook_group.command("remove")
@click.argument("sub_id")
def webhook_remove(sub_id: str) -> None:
    """Remove a subscription (and its delivery log)."""
    database = cli_database(cli_settings())
    try:
        with database.write() as session:
            remove_subscription(session, None, sub_id)
    except ConfigError as exc:
        raise _fail_on_config_error(exc) from None
    click.echo(f"removed webhook {sub_id}")


@webhook_group.command("deliveries")
@click.argument("sub_id")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True)
def webhook_deliveries(sub_id: str, limit: int, as_json: bool) -> None:
    """The delivery log, newest first (redeliver one: `idsync webhook redeliver ID EVENT_ID`)."""
    database = cli_database(cli_settings())
    try:
        with database.read() as session:
            sub = get_subscription(session, None, sub_id)
            view = subscription_json(sub, last_seq(session, sub.org_id))
            rows = [delivery_json(d) for d in deliveries(session, None, sub_id, limit)]
    except ConfigError as exc:
        raise _fail_on_config_error(exc) from None
    if as_json:
        click.echo(json.dumps({"webhook": view, "deliveries": rows}, indent=2))
        return
    click.echo(f"webhook {sub_id} {view['url']} state={view['state']} backlog={view['backlog']}")
    click.echo("sequence\tevent_id\ttype\tstatus\tattempts\tlast_status\tlast_attempt\terror")
    for d in rows:
        status = d["status"] + (" (redelivery pending)" if d["redelivery_pending"] else "")
        fields = [
            str(d["sequence"]),
            d["event_id"],
            d["type"],
            status,
            str(d["attempts"]),
            str(d["last_status_code"] or "-"),
            d["last_attempt_at"] or "-",
            (d["last_error"] or "-")[:80],
        ]
        click.echo("\t".join(fields))


@webhook_group.command("redeliver")
@click.argument("sub_id")
@click.argument("event_id")
def webhook_redeliver(sub_id: str, event_id: str) -> None:
    """Send one event to the subscription again (the worker sends it within a sweep)."""
    database = cli_database(cli_settings())
    try:
        with database.write() as session:
            sub = get_subscription(session, None, sub_id)
            event = event_at(session, sub.org_id, event_id)
            if event is None:
                raise click.ClickException(
                    f"no event {event_id!r} in the subscription's organization"
                )
            request_redelivery(session, None, sub_id, event.seq, event.event_id, event.type)
    except ConfigError as exc:
        raise _fail_on_config_error(exc) from None
    click.echo(f"redelivery of {event_id} to {sub_id} requested")


@webhook_group.command("resume")
@click.argument("sub_id")
def webhook_resume(sub_id: str) -> None:
    """A failing subscription tries again from the event it stopped at."""
    database = cli_database(cli_settings())
    try:
        with database.write() as session:
            resume_subscription(session, None, sub_id)
    except ConfigError as exc:
        raise _fail_on_config_error(exc) from None
    click.echo(f"webhook {sub_id} resumed")
