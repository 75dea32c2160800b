"""Layer: app (admin inputs). IdP connection requests shared by the admin API and the
declarative file: what a connection is (``ConnectionFields``), with its credential given
in the request (API: write-only ``secret``) or named as an environment variable (file:
``secret_env``, so a file kept in git never holds it)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from idsync.config_inputs import Strict
from models.db.config_errors import ConfigError
from models.db.idp_connections import DEFAULT_INTERVAL_S, MIN_INTERVAL_S, ConnectionSpec
from models.outbound_urls import OutboundUrlError, check_url
from models.settings import Settings

Kind = Literal["scim", "okta", "graph"]


class ConnectionFields(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=128)
    kind: Kind
    url: str = Field(
        default="",
        max_length=1024,
        description="SCIM base URL, Okta org URL (https://acme.okta.com), or the Graph root "
        "(default https://graph.microsoft.com)",
    )
    client_id: str | None = Field(default=None, max_length=256, description="graph only")
    token_url: str | None = Field(
        default=None, max_length=1024, description="graph only: the tenant's OAuth token URL"
    )
    scope: str | None = Field(default=None, max_length=256, description="graph only")
    interval_s: int = Field(default=DEFAULT_INTERVAL_S, ge=MIN_INTERVAL_S)
    deactivate_missing: bool = Field(
        default=False,
        description="deactivate local users gone upstream (only after a complete read)",
    )
    rate_limit_per_s: float | None = Field(
        default=None, gt=0, description="at most this many requests per second upstream"
    )
    enabled: bool = True

    def spec(self) -> ConnectionSpec:
        return ConnectionSpec(
            kind=self.kind,
            url=self.url,
            name=self.name,
            client_id=self.client_id,
            token_url=self.token_url,
            scope=self.scope,
            interval_s=self.interval_s,
            deactivate_missing=self.deactivate_missing,
            rate_limit_per_s=self.rate_limit_per_s,
            enabled=self.enabled,
        )


class ConnectionIn(ConnectionFields):
    secret: SecretStr | None = Field(
        default=None,
        json_schema_extra={"writeOnly": True},
        description="write-only: SCIM bearer token, Okta API token or Graph client secret; "
        "stored encrypted, never returned",
    )


class ConnectionPatch(Strict):
    """Only the fields given change; ``secret`` replaces the stored credential."""

    name: str | None = Field(default=None, min_length=1, max_length=128)
    url: str | None = Field(default=None, max_length=1024)
    client_id: str | None = Field(default=None, max_length=256)
    token_url: str | None = Field(default=None, max_length=1024)
    scope: str | None = Field(default=None, max_length=256)
    interval_s: int | None = Field(default=None, ge=MIN_INTERVAL_S)
    deactivate_missing: bool | None = None
    rate_limit_per_s: float | None = Field(default=None, gt=0)
    enabled: bool | None = None
    secret: SecretStr | None = Field(default=None, json_schema_extra={"writeOnly": True})


class ConnectionInFile(ConnectionFields):
    """A connection in the declarative file: named (the file's key for it), its
    credential read from the environment variable ``secret_env`` when applied."""

    name: str = Field(min_length=1, max_length=128)
    secret_env: str | None = Field(default=None, min_length=1, max_length=128)


def checked_spec(spec: ConnectionSpec, settings: Settings) -> ConnectionSpec:
    """``spec`` when its URLs may be called (the outbound guard, ``models.outbound_urls``:
    http(s), a host, no credentials, nothing inside the deployment's network unless
    IDSYNC_OUTBOUND_ALLOW_PRIVATE); else ConfigError naming the field."""
    for field, url in (("url", spec.url), ("token_url", spec.token_url)):
        if url:
            try:
                check_url(url, allow_private=settings.outbound_allow_private)
            except OutboundUrlError as exc:
                raise ConfigError(field, str(exc)) from None
    return spec
