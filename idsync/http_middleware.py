"""Layer: app. What idsync's pure ASGI middlewares share: passing anything but an HTTP
request through untouched (``HttpMiddleware``) and a ``send`` that notes the response's
status as it goes out (``NotingSend``)."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HttpMiddleware:
    """A pure ASGI middleware that acts on HTTP requests only: lifespan and websocket
    scopes go to ``self.app`` untouched, an HTTP request to ``handle``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class NotingSend:
    """``send``, noting the response's start: ``started`` once it went out, ``status``
    its status (500 until then: a request that ends without a response failed), and
    ``headers`` appended to it."""

    __slots__ = ("_headers", "_send", "started", "status")

    def __init__(self, send: Send, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
        self._send = send
        self._headers = headers
        self.started = False
        self.status = 500

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            self.status = int(message["status"])
            if self._headers:
                message = {**message, "headers": [*message.get("headers", []), *self._headers]}
        await self._send(message)
