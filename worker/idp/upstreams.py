"""Layer: worker. What a pull reads from: an ``Upstream`` (kind, URL, credential, Graph's
OAuth settings, rate limit), made from an ``idp_connections`` row (its credential
decrypted with ``IDSYNC_SECRET_KEY``) or from the IDSYNC_IDP_* environment variables (the
bootstrap connection, ``env``), and opened as a ``Source`` with its HTTP clients."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from models.db.connection_tables import IdpConnection
from models.db.idp_connections import GRAPH_SCOPE, GRAPH_URL, reveal_secret
from models.outbound_urls import GuardedTransport
from models.secret_box import SecretBox
from models.settings import Settings
from worker.idp.client import ClientCredentials, HttpClient, StaticAuth
from worker.idp.sources import GraphSource, OktaSource, ScimSource, Source


@dataclass(frozen=True)
class Upstream:
    kind: str
    url: str
    secret: str | None = None
    """SCIM bearer token, Okta API token or Graph client secret (never logged)."""
    client_id: str | None = None
    token_url: str | None = None
    scope: str | None = None
    rate_limit_per_s: float | None = None
    allow_private: bool = True
    """False for a connection an organization's admin configured: every request goes
    through the outbound guard (``models.outbound_urls``) unless
    IDSYNC_OUTBOUND_ALLOW_PRIVATE; the IDSYNC_IDP_* connection is the operator's own."""

    def __repr__(self) -> str:  # the secret stays out of reprs (and so out of logs)
        return f"Upstream(kind={self.kind!r}, url={self.url!r})"


def upstream_of(conn: IdpConnection, box: SecretBox | None, *, allow_private: bool) -> Upstream:
    """The connection's upstream; decrypting raises SecretKeyError (one operator line).
    ``allow_private``: IDSYNC_OUTBOUND_ALLOW_PRIVATE."""
    return Upstream(
        kind=conn.kind,
        url=conn.url,
        secret=reveal_secret(conn, box),
        client_id=conn.client_id,
        token_url=conn.token_url,
        scope=conn.scope,
        rate_limit_per_s=conn.rate_limit_per_s,
        allow_private=allow_private,
    )


def upstream_from_settings(settings: Settings) -> Upstream:
    """The IDSYNC_IDP_* connection. Raises ValueError when that kind's settings are
    incomplete."""
    missing = settings.idp_missing()
    if missing:
        raise ValueError(f"IdP pull ({settings.idp_kind}) needs {', '.join(missing)}")
    kind = settings.idp_kind
    secret = Settings.reveal(settings.idp_client_secret if kind == "graph" else settings.idp_token)
    default_url = GRAPH_URL if kind == "graph" else settings.idp_scim_url
    url = settings.idp_url or default_url
    assert url is not None
    return Upstream(
        kind=kind,
        url=url,
        secret=secret,
        client_id=settings.idp_client_id,
        token_url=settings.idp_token_url,
        scope=settings.idp_scope or GRAPH_SCOPE,
    )


def open_source(up: Upstream) -> tuple[Source, Callable[[], None]]:
    """The upstream as a ``Source``, and a function closing its HTTP clients."""
    rate = up.rate_limit_per_s

    def guard() -> GuardedTransport | None:  # one per HTTP client: each closes its own
        return None if up.allow_private else GuardedTransport(allow_private=False)

    if up.kind == "okta":
        assert up.secret is not None
        client = HttpClient(
            up.url,
            auth=StaticAuth(f"SSWS {up.secret}"),
            accept="application/json",
            rate_limit_per_s=rate,
            transport=guard(),
        )
        return OktaSource(client), client.close
    if up.kind == "graph":
        assert up.token_url and up.client_id and up.secret
        creds = ClientCredentials(
            up.token_url, up.client_id, up.secret, up.scope or GRAPH_SCOPE, transport=guard()
        )
        client = HttpClient(
            up.url, auth=creds, accept="application/json", rate_limit_per_s=rate, transport=guard()
        )

        def close() -> None:
            client.close()
            creds.close()

        return GraphSource(client), close
    client = HttpClient(up.url, up.secret, rate_limit_per_s=rate, transport=guard())
    return ScimSource(client), client.close


def source_from_settings(settings: Settings) -> tuple[Source, Callable[[], None]]:
    """The IDSYNC_IDP_* upstream, opened (raises ValueError when incomplete)."""
    return open_source(upstream_from_settings(settings))
