"""scim.offload.in_thread: off the event loop, in the caller's context."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from scim.offload import in_thread

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("rid", default=None)


def _where(suffix: str) -> tuple[str | None, str, str]:
    return request_id.get(), threading.current_thread().name, suffix


def _fail() -> None:
    raise LookupError("boom")


def test_runs_in_a_worker_thread_with_the_callers_context() -> None:
    async def main() -> tuple[str | None, str, str]:
        request_id.set("req-9")
        return await in_thread(_where, suffix="x")

    rid, thread, suffix = asyncio.run(main())
    assert rid == "req-9" and suffix == "x"
    assert thread.startswith("idsync-request") and thread != threading.main_thread().name


def test_exceptions_propagate_to_the_awaiting_coroutine() -> None:
    with pytest.raises(LookupError, match="boom"):
        asyncio.run(in_thread(_fail))
