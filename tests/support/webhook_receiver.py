"""A webhook receiver on localhost for tests: a real threaded HTTP server that records every
request, verifies its signature with the sample in docs/events.md, answers with the status
a test chooses, and can go down and come back on the same port."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def docs_verifier() -> Callable[..., bool]:
    """``verify_idsync_signature`` exactly as docs/events.md shows it."""
    text = DOCS.read_text()
    match = re.search(
        r"<!-- verify-sample -->\s*```python\n(.*?)```\s*<!-- /verify-sample -->", text, re.S
    )
    assert match is not None, "docs/events.md lost its verification sample"
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), str(DOCS), "exec"), namespace)
    verify: Callable[..., bool] = namespace["verify_idsync_signature"]
    return verify


@dataclass
class Received:
    event_id: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    status: int
    at: float


class Receiver:
    """``status_for(received_so_far, body) -> status``; ``hold_s`` delays every answer."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.verify = docs_verifier()
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.status_for: Callable[[int, bytes], int] = lambda _n, _b: 200
        self.hold_s = 0.0
        self.on_request: Callable[[Received], None] | None = None
        self.server: ThreadingHTTPServer | None = None
        self.port = 0
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                headers = {k: v for k, v in self.headers.items()}
                with receiver.lock:
                    status = receiver.status_for(len(receiver.received), body)
                    item = Received(
                        headers.get("Idsync-Event-Id", ""),
                        headers,
                        body,
                        receiver.verify(receiver.secret, headers, body),
                        status,
                        time.monotonic(),
                    )
                    receiver.received.append(item)
                if receiver.on_request is not None:
                    receiver.on_request(item)
                if receiver.hold_s:
                    time.sleep(receiver.hold_s)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender is gone (a killed worker, a timeout)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def delivered_ids(self) -> list[str]:
        """Ids of the requests answered 2xx, first occurrence order."""
        with self.lock:
            out: list[str] = []
            for r in self.received:
                if 200 <= r.status < 300 and r.event_id not in out:
                    out.append(r.event_id)
            return out
