"""A SCIM 2.0 upstream on localhost for tests where a real worker (another process) pulls:
several tenants, each with its own bearer token and directory, optionally slow, failing,
or rate-limited (429 with ``Retry-After``). Serve it with ``tests.support.live_server``."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


@dataclass
class Tenant:
    token: str
    users: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    delay_s: float = 0.0
    fail_status: int | None = None
    throttle: int = 0
    """Answer this many requests with 429 ``Retry-After: 1`` first."""
    fail_first: int = 0
    """Answer this many requests with 503 (no ``Retry-After``) first."""
    seen: list[tuple[float, str | None]] = field(default_factory=list)
    """(monotonic time, Authorization header) of every request."""

    def user(self, uid: str, name: str, active: bool = True) -> None:
        self.users.append({"id": uid, "userName": name, "active": active})

    def group(self, gid: str, name: str, members: list[str]) -> None:
        self.groups.append(
            {"id": gid, "displayName": name, "members": [{"value": m} for m in members]}
        )


class FakeIdp:
    def __init__(self) -> None:
        self.tenants: dict[str, Tenant] = {}

    def tenant(self, name: str, token: str) -> Tenant:
        self.tenants[name] = Tenant(token)
        return self.tenants[name]

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/{name}/scim/v2/{resource}")
        async def listing(name: str, resource: str, request: Request) -> JSONResponse:
            tenant = self.tenants[name]
            auth = request.headers.get("authorization")
            tenant.seen.append((time.monotonic(), auth))
            if tenant.delay_s:
                await asyncio.sleep(tenant.delay_s)
            if auth != f"Bearer {tenant.token}":
                return JSONResponse({"detail": "unauthorized"}, status_code=401)
            if tenant.throttle > 0:
                tenant.throttle -= 1
                return JSONResponse({}, status_code=429, headers={"Retry-After": "1"})
            if tenant.fail_first > 0:
                tenant.fail_first -= 1
                return JSONResponse({"detail": "unavailable"}, status_code=503)
            if tenant.fail_status is not None:
                return JSONResponse({"detail": "failing"}, status_code=tenant.fail_status)
            items = tenant.users if resource == "Users" else tenant.groups
            start = int(request.query_params.get("startIndex", "1"))
            count = int(request.query_params.get("count", "100"))
            page = items[start - 1 : start - 1 + count]
            return JSONResponse(
                {
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                    "totalResults": len(items),
                    "startIndex": start,
                    "itemsPerPage": len(page),
                    "Resources": page,
                }
            )

        return app
