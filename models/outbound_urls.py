"""Layer: support. Where idsync may send a request an organization's admin told it to
send (webhook receivers, IdP connection URLs): never, unless the operator allows it,
into the deployment's own network.

An admin of one organization configures a webhook URL or an IdP connection's URL; the
worker then sends requests to it from inside the deployment. Without a guard that is a
server-side request forgery: a URL naming ``127.0.0.1:6379``, a metadata service
(``169.254.169.254``) or a host on the private network would have the worker send
requests there, and the delivery log or the pull run's error would show what answered.
So:

- ``check_url`` (when a subscription or connection is created or changed): ``https`` or
  ``http`` only, a host, no user or password in the URL, and an IP-literal host must be
  public;
- ``GuardedTransport`` (every delivery and every pull request): the host is resolved and
  every address it resolves to must be public, checked again at each request (a name
  that later resolves somewhere private is refused then); redirects are never followed.

"Public" is ``ipaddress``'s ``is_global`` (loopback, private, link-local, shared
address space, multicast, reserved and unspecified addresses are not).
``IDSYNC_OUTBOUND_ALLOW_PRIVATE=true`` lifts the address rule, for targets inside the
deployment's own network (and tests on localhost). The check resolves the name a moment
before the connection resolves it again: a name whose answer changes in between (DNS
rebinding) is not caught; an egress firewall is the complete answer, this the default.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Final
from urllib.parse import urlsplit

import httpx

SCHEMES: Final = ("https", "http")


class OutboundUrlError(ValueError):
    """A URL idsync will not send requests to; the message names why."""


def _public(address: str) -> bool:
    return ipaddress.ip_address(address.split("%", 1)[0]).is_global


def check_url(url: str, *, allow_private: bool) -> str:
    """``url`` if requests may be sent to it (as far as it can be told without resolving
    its host), else OutboundUrlError naming the problem."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise OutboundUrlError(f"not a URL: {exc}") from None
    if parts.scheme not in SCHEMES:
        raise OutboundUrlError("the URL must start with https:// (or http://)")
    if not parts.hostname:
        raise OutboundUrlError("the URL names no host")
    if parts.username is not None or parts.password is not None:
        raise OutboundUrlError(
            "the URL must not carry a user or password (the signature authenticates idsync)"
        )
    if port == 0:
        raise OutboundUrlError("the URL's port must not be 0")
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return url.strip()
    if not allow_private and not literal.is_global:
        raise OutboundUrlError(
            f"{parts.hostname} is not a public address (loopback, private, link-local or "
            "reserved); set IDSYNC_OUTBOUND_ALLOW_PRIVATE=true to allow targets inside "
            "the deployment's network"
        )
    return url.strip()


def resolve_public(host: str, port: int) -> None:
    """Raise OutboundUrlError unless every address ``host`` resolves to is public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise OutboundUrlError(f"{host} does not resolve: {exc}") from None
    private = sorted({str(info[4][0]) for info in infos if not _public(str(info[4][0]))})
    if private:
        raise OutboundUrlError(
            f"{host} resolves to an address that is not public ({', '.join(private)}); "
            "set IDSYNC_OUTBOUND_ALLOW_PRIVATE=true to allow targets inside the "
            "deployment's network"
        )


class GuardedTransport(httpx.HTTPTransport):
    """An httpx transport that refuses requests to hosts that are not public (see the
    module doc) with ``httpx.ConnectError`` before connecting, unless ``allow_private``."""

    def __init__(self, *, allow_private: bool) -> None:
        super().__init__()
        self.allow_private = allow_private

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not self.allow_private:
            url = request.url
            try:
                resolve_public(url.host, url.port or (443 if url.scheme == "https" else 80))
            except OutboundUrlError as exc:
                raise httpx.ConnectError(str(exc), request=request) from None
        return super().handle_request(request)
