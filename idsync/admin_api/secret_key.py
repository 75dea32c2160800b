"""Layer: app. The server's credential encryption for a request (``IDSYNC_SECRET_KEY``): IdP
connection credentials and webhook signing secrets. Without a usable key the answer is
503 naming the variable (the operator's to fix, not the caller's)."""

from __future__ import annotations

from fastapi import Request

from models.db.config_errors import ConfigError
from models.secret_box import SecretBox, SecretKeyError
from models.settings import Settings


class KeyMissing(ConfigError):
    """The server cannot encrypt or decrypt credentials: IDSYNC_SECRET_KEY (operator)."""

    status = 503


def secret_box(request: Request) -> SecretBox:
    settings: Settings = request.app.state.settings
    try:
        return settings.secret_box()
    except SecretKeyError as exc:
        raise KeyMissing("secret", str(exc)) from None
