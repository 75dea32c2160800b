"""Layer: app. The ``webhooks:`` section of a declarative file (``idsync apply``): the
organization's webhook subscriptions, each keyed by its URL, the signing secret named by
the environment variable that holds it (``secret_env``: a file kept in git never contains
it). Authoritative like the file's other sections: subscriptions of the organization whose
URL is missing from it are removed. Applying the same file twice changes nothing."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from idsync.declared_connections import secret_from_env
from idsync.webhook_inputs import webhook_url
from models.db.config_errors import ConfigError
from models.db.event_log import last_seq
from models.db.webhooks import (
    NewSubscription,
    check_types,
    create_subscription,
    list_subscriptions,
    remove_subscription,
    update_subscription,
)
from models.secret_box import SecretKeyError
from models.settings import get_settings
from worker.events.directory import EVENT_TYPES


class WebhookInFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    events: list[str] = Field(default_factory=list, description="empty: every event type")
    secret_env: str = Field(description="environment variable holding the signing secret")
    description: str = Field(default="", max_length=200)


def apply_webhooks(
    session: Session,
    org_id: str,
    declared: list[WebhookInFile],
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """Make the organization's subscriptions match ``declared``; the diff lines."""
    env = os.environ if environ is None else environ
    urls = [d.url for d in declared]
    for dup in sorted({u for u in urls if urls.count(u) > 1}):
        raise ConfigError("webhooks", f"the URL {dup!r} is given twice")
    existing = {sub.url: sub for sub, _ in list_subscriptions(session, org_id)}
    diff: list[str] = []
    for i, decl in enumerate(declared):
        where = f"webhooks[{i}]"
        secret = secret_from_env(env, decl.secret_env, f"{where}.secret_env")
        try:
            settings = get_settings()
            box = settings.secret_box()
            url = webhook_url(decl.url, settings)
            new = NewSubscription(
                url, check_types(decl.events, EVENT_TYPES), secret, decl.description
            )
            sub = existing.get(decl.url)
            if sub is None:
                start = last_seq(session, org_id)
                create_subscription(session, org_id, new, box, start_at=start)
                diff.append(f"+ webhook {decl.url}")
            elif update_subscription(session, sub, new, box):
                diff.append(f"~ webhook {decl.url}")
        except SecretKeyError as exc:
            raise ConfigError(where, str(exc)) from None
        except ConfigError as exc:
            raise exc.under(where) from None
    for url, sub in sorted(existing.items()):
        if url not in urls:
            remove_subscription(session, org_id, sub.id)
            diff.append(f"- webhook {url}")
    return diff
