"""Layer: app (CLI). `idsync audit`: the change log read as an audit trail (who, what, when)."""

from __future__ import annotations

import json

import click
from sqlalchemy import select

from idsync.cli_support import cli_database, cli_settings
from models.db.tables import Change, Organization


@click.command()
@click.option("--org", "org_name", default=None, help="Only this organization.")
@click.option("--limit", default=50, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def audit(org_name: str | None, limit: int, as_json: bool) -> None:
    """The most recent writes: revision, when, actor (token/key id), kind, resource."""
    settings = cli_settings()
    database = cli_database(settings)
    query = (
        select(Change, Organization.name)
        .join(Organization, Organization.id == Change.org_id)
        .order_by(Change.id.desc())
        .limit(limit)
    )
    if org_name is not None:
        query = query.where(Organization.name == org_name)
    with database.read() as session:
        rows = session.execute(query).all()
    for change, org in reversed(rows):
        record = {
            "org": org,
            "revision": change.revision,
            "at": change.created_at.isoformat(timespec="milliseconds"),
            "actor": change.actor,
            "kind": change.kind,
            "resource": f"{change.resource_type}/{change.resource_id or '-'}",
            "users": len(change.user_ids),
            "groups": len(change.group_ids),
            "request_id": change.request_id,
            "summary": change.summary,
        }
        if as_json:
            click.echo(json.dumps(record))
        else:
            click.echo(
                f"{record['at']}  {org}#{change.revision}  {change.actor}  {change.kind}  "
                f"{record['resource']}  {change.summary}"
            )
    database.dispose()
