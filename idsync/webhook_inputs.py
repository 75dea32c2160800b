"""Layer: app. A webhook URL as the API, the CLI and the declarative file accept it: through
the outbound guard (``models.outbound_urls``: http(s), a host, no credentials, no receiver
inside the deployment's network unless ``IDSYNC_OUTBOUND_ALLOW_PRIVATE``)."""

from __future__ import annotations

from models.db.config_errors import ConfigError
from models.outbound_urls import OutboundUrlError, check_url
from models.settings import Settings


def webhook_url(url: str, settings: Settings) -> str:
    try:
        return check_url(url, allow_private=settings.outbound_allow_private)
    except OutboundUrlError as exc:
        raise ConfigError("url", str(exc)) from None
