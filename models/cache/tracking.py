"""Layer: store. Server-assisted invalidation: Redis tells this process when an organization's cache
keys change, so answers read from them may be kept in process memory meanwhile.

One connection per process (``Invalidations.run``, an asyncio task), in RESP2:

    CLIENT ID                                   -> its own id
    CLIENT TRACKING ON REDIRECT <id> BCAST PREFIX idsync:{
    SUBSCRIBE __redis__:invalidate

From then on Redis publishes, on that connection, the name of every key under
``idsync:{`` that any client modifies (expires and evictions included), before it
answers the writer: a writer's call returns after Redis has queued the message. Only
the keys an answer is read from matter (``idsync:{org}:meta`` and the generation keys
``idsync:{org}:g<gen>:*``, ``models.cache.layout``); each one reported calls
``on_change(org_id)``, and a flush (a message without key names) ``on_change(None)``.

A lost or stalled connection must never leave stale answers in use: the task sends a
``PING`` every ``ping_every_s`` and ``usable()`` is true only while the last ``PONG``
came back for a ping sent less than ``lease_s`` ago. Redis answers a ping after every
message queued before it, so an answer kept while ``usable()`` is true misses a change
by at most ``lease_s`` even when the connection stalls without a TCP error; a read or
protocol error, or a ping unanswered past the lease, also calls ``on_change(None)``
(everything kept is dropped) and the task reconnects after ``retry_s``.

Redis Cluster is not covered (tracking is per node): callers keep nothing there.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable
from typing import Final
from urllib.parse import unquote, urlsplit

from models.cache.layout import PREFIX

CHANNEL: Final = b"__redis__:invalidate"
TRACKED_PREFIX: Final = f"{PREFIX}:{{"
PING_EVERY_S: Final = 0.1
LEASE_S: Final = 0.5
RETRY_S: Final = 0.5
RETRY_MAX_S: Final = 30.0
CONNECT_TIMEOUT_S: Final = 1.0
log = logging.getLogger("idsync.cache.tracking")

Reply = bytes | int | list["Reply"] | None


class ProtocolError(Exception):
    """Redis answered what this connection did not expect."""


def org_of(key: bytes) -> str | None:
    """The organization whose answers a change of ``key`` may alter, else None
    (``idsync:{org}:meta`` and ``idsync:{org}:g<gen>:…``; not lanes, leases, streams)."""
    start = len(TRACKED_PREFIX)
    if not key.startswith(TRACKED_PREFIX.encode()):
        return None
    end = key.find(b"}:", start)
    if end < 0:
        return None
    rest = key[end + 2 :]
    if rest == b"meta" or rest[:1] == b"g":
        return key[start:end].decode("utf-8", "replace")
    return None


def _command(*parts: str | int | bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        raw = part if isinstance(part, bytes) else str(part).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


async def _read(reader: asyncio.StreamReader) -> Reply:
    """One RESP2 reply (errors raise ProtocolError)."""
    line = await reader.readuntil(b"\r\n")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body
    if kind == b"-":
        raise ProtocolError(body.decode("utf-8", "replace"))
    if kind == b":":
        return int(body)
    if kind == b"$":
        size = int(body)
        if size < 0:
            return None
        data = await reader.readexactly(size + 2)
        return data[:-2]
    if kind == b"*":
        size = int(body)
        if size < 0:
            return None
        return [await _read(reader) for _ in range(size)]
    raise ProtocolError(f"unexpected reply {line[:40]!r}")


class Invalidations:
    """The invalidation connection of one process (see the module doc)."""

    def __init__(
        self,
        url: str,
        on_change: Callable[[str | None], None],
        *,
        ping_every_s: float = PING_EVERY_S,
        lease_s: float = LEASE_S,
        retry_s: float = RETRY_S,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(f"invalidation tracking needs a redis:// URL, not {parts.scheme}")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 6379
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.tls = parts.scheme == "rediss"
        self.on_change = on_change
        self.ping_every_s = ping_every_s
        self.lease_s = lease_s
        self.retry_s = retry_s
        self.valid_until = 0.0
        self.connections = 0
        """connections made so far (tests and the bench watch it)"""

    def usable(self) -> bool:
        """Whether answers kept under this connection's watch may be used now."""
        return time.monotonic() < self.valid_until

    def _drop(self) -> None:
        self.valid_until = 0.0
        self.on_change(None)

    async def run(self) -> None:
        """Watch until cancelled: connect, track, reconnect after any failure (``retry_s``
        after a connection that worked, doubling up to ``RETRY_MAX_S`` while none does:
        a Redis refusing CLIENT TRACKING, an ACL say, costs a log line now and then)."""
        delay = self.retry_s
        while True:
            made = self.connections
            try:
                await self._session()
            except asyncio.CancelledError:
                self._drop()
                raise
            except Exception as exc:  # any failure: drop what is kept, log, reconnect
                log.warning("cache invalidation connection lost: %s", exc)
            self._drop()
            delay = self.retry_s if self.connections > made else min(delay * 2, RETRY_MAX_S)
            await asyncio.sleep(delay)

    async def _session(self) -> None:
        context = ssl.create_default_context() if self.tls else None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, ssl=context), CONNECT_TIMEOUT_S
        )
        try:
            await asyncio.wait_for(self._subscribe(reader, writer), CONNECT_TIMEOUT_S)
            await self._watch(reader, writer)
        finally:
            self.valid_until = 0.0
            writer.close()

    async def _subscribe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.password is not None:
            auth = (
                ("AUTH", self.username, self.password) if self.username else ("AUTH", self.password)
            )
            writer.write(_command(*(p for p in auth if p is not None)))
            await _read(reader)
        writer.write(_command("CLIENT", "ID"))
        own = await _read(reader)
        writer.write(
            _command(
                "CLIENT", "TRACKING", "ON", "REDIRECT", str(own), "BCAST", "PREFIX", TRACKED_PREFIX
            )
        )
        await _read(reader)
        since = time.monotonic()
        writer.write(_command("SUBSCRIBE", CHANNEL))
        reply = await _read(reader)
        if not (isinstance(reply, list) and reply[:1] == [b"subscribe"]):
            raise ProtocolError(f"SUBSCRIBE answered {reply!r}")
        self.on_change(None)  # whatever was kept before this connection is not covered
        self.connections += 1
        self.valid_until = since + self.lease_s

    async def _watch(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pings: deque[float] = deque()  # send times of the pings not answered yet
        pinger = asyncio.create_task(self._ping(writer, pings))
        try:
            while True:
                reply = await _read(reader)  # a stall is ended by the pinger (abort)
                if not isinstance(reply, list) or not reply:
                    raise ProtocolError(f"unexpected message {reply!r}")
                if reply[0] == b"pong":
                    if not pings:
                        raise ProtocolError("PONG without a PING")
                    self.valid_until = pings.popleft() + self.lease_s
                elif reply[0] == b"message" and len(reply) == 3:
                    self._changed(reply[2])
                else:
                    raise ProtocolError(f"unexpected message {reply[:2]!r}")
        finally:
            pinger.cancel()

    async def _ping(self, writer: asyncio.StreamWriter, pings: deque[float]) -> None:
        """PING every ``ping_every_s``; a ping unanswered past the lease drops what is
        kept at once and aborts the connection (the reader then fails and reconnects)."""
        while True:
            now = time.monotonic()
            if pings and now - pings[0] > self.lease_s:
                log.warning("cache invalidation connection stalled: no PONG in %s s", self.lease_s)
                self._drop()
                writer.transport.abort()
                return
            writer.write(_command("PING"))
            pings.append(now)
            await asyncio.sleep(self.ping_every_s)

    def _changed(self, keys: Reply) -> None:
        if not isinstance(keys, list):  # FLUSHDB / FLUSHALL: no key names
            self.on_change(None)
            return
        seen: set[str] = set()
        for key in keys:
            if not isinstance(key, bytes):
                continue
            org = org_of(key)
            if org is not None and org not in seen:
                seen.add(org)
                self.on_change(org)
