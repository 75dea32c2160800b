"""HTTP access to an upstream IdP: auth, timeouts, retries with backoff and jitter,
``Retry-After`` on 429 (and 503)."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx


class IdpError(RuntimeError):
    """The upstream read failed (after retries, or with a non-retryable status)."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_s: float = 0.5
    cap_s: float = 10.0
    timeout: httpx.Timeout = field(default_factory=lambda: httpx.Timeout(10.0, connect=5.0))

    def backoff(self, attempt: int, rnd: random.Random) -> float:
        """Full jitter: uniform(0, min(cap, base * 2**attempt))."""
        return rnd.uniform(0, min(self.cap_s, self.base_s * 2**attempt))


def retry_after_s(value: str | None, cap: float) -> float | None:
    if not value:
        return None
    try:
        return min(cap, max(0.0, float(value)))
    except ValueError:
        pass
    parsed = email.utils.parsedate_to_datetime(value) if value else None
    if parsed is None:
        return None
    return min(cap, max(0.0, parsed.timestamp() - time.time()))


class HttpClient:
    """GETs JSON from ``base_url`` with bearer auth and the retry policy."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        policy: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
    ) -> None:
        self.policy = policy or RetryPolicy()
        headers = {"Accept": "application/scim+json, application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=self.policy.timeout,
            transport=transport,
        )
        self.sleep = sleep
        self.rnd = random.Random(seed)  # noqa: S311 - jitter, not security
        self.requests = 0

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        last: str = ""
        for attempt in range(self.policy.attempts):
            self.requests += 1
            try:
                resp = self.http.get(path, params=dict(params or {}))
            except httpx.TimeoutException as exc:
                last = f"timeout: {exc}"
            except httpx.TransportError as exc:
                last = f"transport error: {exc}"
            else:
                if resp.status_code == 200:
                    data = resp.json()
                    if not isinstance(data, dict):
                        raise IdpError(f"GET {path}: expected a JSON object")
                    return data
                if resp.status_code in (429, 503):
                    wait = retry_after_s(resp.headers.get("Retry-After"), self.policy.cap_s)
                    last = f"HTTP {resp.status_code}"
                    if attempt + 1 < self.policy.attempts:
                        self.sleep(
                            wait if wait is not None else self.policy.backoff(attempt, self.rnd)
                        )
                    continue
                if resp.status_code >= 500:
                    last = f"HTTP {resp.status_code}"
                else:
                    raise IdpError(f"GET {path}: HTTP {resp.status_code} {resp.text[:200]}")
            if attempt + 1 < self.policy.attempts:
                self.sleep(self.policy.backoff(attempt, self.rnd))
        raise IdpError(f"GET {path}: giving up after {self.policy.attempts} attempts ({last})")

    def close(self) -> None:
        self.http.close()
