"""Layer: worker. HTTP access to an upstream IdP: auth, timeouts, retries with backoff and
jitter, ``Retry-After`` on 429 (and 503), Okta's ``X-Rate-Limit-Remaining`` /
``X-Rate-Limit-Reset``, and absolute "next page" URLs (Okta ``Link``, Graph
``@odata.nextLink``).

Auth is a header value: a fixed one (``Bearer <token>``, ``SSWS <token>``) or a
provider called before each request (``ClientCredentials`` for Microsoft Graph, which
fetches and refreshes an OAuth 2.0 token; a 401 drops the cached token and retries
once)."""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx


class IdpError(RuntimeError):
    """The upstream read failed (after retries, or with a non-retryable status).

    ``status`` is the upstream's HTTP status when it answered one; ``transient`` says
    whether a later attempt may succeed (5xx, 429, timeouts, transport errors after the
    client's retries) or not (another 4xx: a wrong credential or URL); ``retry_after_s``,
    how long the upstream asked to be left alone when that is longer than the client
    waits in place (``RetryPolicy.cap_s``): the caller defers the next run instead."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        transient: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.transient = transient
        self.retry_after_s = retry_after_s


class AuthProvider(Protocol):
    def header(self) -> str:
        """The ``Authorization`` header value (fetching a token when needed)."""
        ...

    def invalidate(self) -> bool:
        """Forget a cached token (the upstream answered 401); True when a new one may help."""
        ...


class StaticAuth:
    def __init__(self, value: str) -> None:
        self.value = value

    def header(self) -> str:
        return self.value

    def invalidate(self) -> bool:
        return False  # a fixed credential: retrying a 401 cannot help


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_s: float = 0.5
    cap_s: float = 10.0
    timeout: httpx.Timeout = field(default_factory=lambda: httpx.Timeout(10.0, connect=5.0))

    def backoff(self, attempt: int, rnd: random.Random) -> float:
        """Full jitter: uniform(0, min(cap, base * 2**attempt))."""
        return rnd.uniform(0, min(self.cap_s, self.base_s * 2**attempt))


def rate_limit_reset_s(
    headers: httpx.Headers, cap: float, now: Callable[[], float]
) -> float | None:
    """Seconds until Okta's ``X-Rate-Limit-Reset`` (epoch seconds), capped."""
    value = headers.get("X-Rate-Limit-Reset")
    if not value:
        return None
    try:
        return min(cap, max(0.0, float(value) - now()))
    except ValueError:
        return None


def requested_wait_s(headers: httpx.Headers, now: Callable[[], float]) -> float | None:
    """How long a 429/503 asks the client to wait (``Retry-After``, else Okta's
    ``X-Rate-Limit-Reset``), uncapped; None when it does not say."""
    wait = retry_after_s(headers.get("Retry-After"), math.inf)
    if wait is None:
        wait = rate_limit_reset_s(headers, math.inf, now)
    return wait


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
    """GETs JSON from ``base_url`` with an auth header and the retry policy.

    ``token`` is a bearer token (SCIM); ``auth`` any other scheme or a token provider.
    ``path`` may be an absolute URL (next-page links); it is then used as is.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        auth: AuthProvider | None = None,
        policy: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
        now: Callable[[], float] = time.time,
        accept: str = "application/scim+json, application/json",
        rate_limit_per_s: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self.min_gap_s = 1.0 / rate_limit_per_s if rate_limit_per_s else 0.0
        """The connection's own rate limit: at least this long between two requests."""
        self.monotonic = monotonic
        self._last_request: float | None = None
        self.auth = auth if auth is not None else (StaticAuth(f"Bearer {token}") if token else None)
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Accept": accept},
            timeout=self.policy.timeout,
            transport=transport,
        )
        self.sleep = sleep
        self.now = now
        self.rnd = random.Random(seed)  # noqa: S311 - jitter, not security
        self.requests = 0
        self._pause_s = 0.0

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        data = self.get(path, params).json()
        if not isinstance(data, dict):
            raise IdpError(f"GET {path}: expected a JSON object")
        return data

    def _wait_429(self, resp: httpx.Response, attempt: int) -> float:
        wait = retry_after_s(resp.headers.get("Retry-After"), self.policy.cap_s)
        if wait is None:
            wait = rate_limit_reset_s(resp.headers, self.policy.cap_s, self.now)
        return wait if wait is not None else self.policy.backoff(attempt, self.rnd)

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> httpx.Response:
        """A 200 response (after retries); raises IdpError otherwise."""
        last: str = ""
        last_status: int | None = None
        reauthorized = False
        attempt = 0
        while attempt < self.policy.attempts:
            if self._pause_s > 0:  # the previous response said the rate limit is used up
                self.sleep(self._pause_s)
                self._pause_s = 0.0
            self._keep_rate()
            self.requests += 1
            headers = {} if self.auth is None else {"Authorization": self.auth.header()}
            try:
                # params=None, not {}: an empty mapping would strip a next-page URL's query
                query = dict(params) if params else None
                resp = self.http.get(path, params=query, headers=headers)
            except httpx.TimeoutException as exc:
                last = f"timeout: {exc}"
            except httpx.TransportError as exc:
                last = f"transport error: {exc}"
            else:
                if resp.status_code == 200:
                    if resp.headers.get("X-Rate-Limit-Remaining") == "0":
                        reset = rate_limit_reset_s(resp.headers, self.policy.cap_s, self.now)
                        self._pause_s = reset or 0.0
                    return resp
                if (
                    resp.status_code == 401
                    and self.auth is not None
                    and not reauthorized
                    and self.auth.invalidate()
                ):
                    reauthorized = True  # an expired token: fetch a new one, once
                    continue
                last_status = resp.status_code
                if resp.status_code in (429, 503):
                    last = f"HTTP {resp.status_code}"
                    asked = requested_wait_s(resp.headers, self.now)
                    if asked is not None and asked > self.policy.cap_s:
                        raise IdpError(  # not in place: the next run is deferred instead
                            f"GET {path}: HTTP {resp.status_code}, Retry-After {asked:.0f} s",
                            status=resp.status_code,
                            transient=True,
                            retry_after_s=asked,
                        )
                    if attempt + 1 < self.policy.attempts:
                        self.sleep(self._wait_429(resp, attempt))
                    attempt += 1
                    continue
                if resp.status_code >= 500:
                    last = f"HTTP {resp.status_code}"
                else:
                    raise IdpError(
                        f"GET {path}: HTTP {resp.status_code} {resp.text[:200]}",
                        status=resp.status_code,
                    )
            if attempt + 1 < self.policy.attempts:
                self.sleep(self.policy.backoff(attempt, self.rnd))
            attempt += 1
        raise IdpError(
            f"GET {path}: giving up after {self.policy.attempts} attempts ({last})",
            status=last_status,
            transient=True,
        )

    def _keep_rate(self) -> None:
        if self.min_gap_s and self._last_request is not None:
            wait = self._last_request + self.min_gap_s - self.monotonic()
            if wait > 0:
                self.sleep(wait)
        self._last_request = self.monotonic()

    def close(self) -> None:
        self.http.close()


class ClientCredentials:
    """OAuth 2.0 client-credentials tokens (Microsoft Graph: the tenant's token URL,
    scope ``https://graph.microsoft.com/.default``), cached until shortly before expiry."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str,
        *,
        policy: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] = time.time,
        seed: int | None = None,
    ) -> None:
        self.token_url = token_url
        self.form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
            "scope": scope,
        }
        self.policy = policy or RetryPolicy()
        self.http = httpx.Client(timeout=self.policy.timeout, transport=transport)
        self.sleep = sleep
        self.now = now
        self.rnd = random.Random(seed)  # noqa: S311 - jitter, not security
        self._token: str | None = None
        self._expires_at = 0.0
        self.fetches = 0

    def header(self) -> str:
        if self._token is None or self.now() >= self._expires_at:
            self._token, lifetime = self._fetch()
            self._expires_at = self.now() + max(0.0, lifetime - 60.0)
        return f"Bearer {self._token}"

    def invalidate(self) -> bool:
        self._token = None
        return True

    def _fetch(self) -> tuple[str, float]:
        last = ""
        for attempt in range(self.policy.attempts):
            self.fetches += 1
            try:
                resp = self.http.post(self.token_url, data=self.form)
            except httpx.TransportError as exc:
                last = f"transport error: {exc}"
            else:
                if resp.status_code == 200:
                    body = resp.json()
                    token = body.get("access_token") if isinstance(body, dict) else None
                    if not isinstance(token, str) or not token:
                        raise IdpError("token endpoint: no access_token in the response")
                    return token, float(body.get("expires_in", 3600))
                if resp.status_code not in (429,) and resp.status_code < 500:
                    # 400/401: wrong client id / secret / scope - retrying cannot help
                    raise IdpError(
                        f"token endpoint: HTTP {resp.status_code} {resp.text[:200]}",
                        status=resp.status_code,
                    )
                last = f"HTTP {resp.status_code}"
                wait = retry_after_s(resp.headers.get("Retry-After"), self.policy.cap_s)
                if attempt + 1 < self.policy.attempts:
                    self.sleep(wait if wait is not None else self.policy.backoff(attempt, self.rnd))
                continue
            if attempt + 1 < self.policy.attempts:
                self.sleep(self.policy.backoff(attempt, self.rnd))
        raise IdpError(
            f"token endpoint: giving up after {self.policy.attempts} attempts ({last})",
            transient=True,
        )

    def close(self) -> None:
        self.http.close()
