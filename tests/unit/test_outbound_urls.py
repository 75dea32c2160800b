"""Webhook receivers inside the deployment's network are refused unless the operator
allows them: at configuration (``check_url``) and at every delivery (``GuardedTransport``,
which resolves the host first)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from models.outbound_urls import GuardedTransport, OutboundUrlError, check_url, resolve_public


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/idsync",
        "http://hooks.example.com:8080/x?y=1",
        "https://8.8.8.8/hook",
        "https://[2606:4700:4700::1111]/hook",
    ],
)
def test_public_urls_are_accepted(url: str) -> None:
    assert check_url(url, allow_private=False) == url


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://hooks.example.com/x", "https://"),
        ("https:///nohost", "no host"),
        ("https://user:pw@hooks.example.com/x", "user or password"),
        ("http://127.0.0.1:6379/", "not a public address"),
        ("http://10.1.2.3/", "not a public address"),
        ("http://169.254.169.254/latest/meta-data", "not a public address"),
        ("http://[::1]:8080/", "not a public address"),
        ("http://100.64.0.1/", "not a public address"),
        ("http://0.0.0.0/", "not a public address"),
        ("http://hooks.example.com:99999/", "not a URL"),
    ],
)
def test_urls_into_the_deployment_or_malformed_are_refused_naming_why(url: str, says: str) -> None:
    with pytest.raises(OutboundUrlError, match=says):
        check_url(url, allow_private=False)


def test_the_operator_may_allow_private_receivers() -> None:
    assert check_url("http://10.1.2.3/hook", allow_private=True) == "http://10.1.2.3/hook"
    with pytest.raises(OutboundUrlError):  # the other rules still hold
        check_url("http://u:p@10.1.2.3/hook", allow_private=True)


def test_a_name_resolving_to_loopback_is_refused() -> None:
    with pytest.raises(OutboundUrlError, match="not public"):
        resolve_public("localhost", 80)


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_deliveries_to_a_private_receiver_never_connect_unless_allowed(
    receiver: tuple[str, list[str]],
) -> None:
    base, seen = receiver
    guarded = httpx.Client(transport=GuardedTransport(allow_private=False), timeout=5)
    with guarded, pytest.raises(httpx.ConnectError, match="not public"):
        guarded.post(f"{base}/refused", content=b"{}")
    assert seen == []
    with httpx.Client(transport=GuardedTransport(allow_private=True), timeout=5) as client:
        assert client.post(f"{base}/allowed", content=b"{}").status_code == 204
    assert seen == ["/allowed"]
