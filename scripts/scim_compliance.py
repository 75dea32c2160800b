"""Run scim2-tester's compliance checks against a live SCIM server and print a table.

Usage (an idsync deployment, or any SCIM 2.0 server that takes a bearer token):

    python scripts/scim_compliance.py http://127.0.0.1:8000/scim/v2 "$TOKEN"
    python scripts/scim_compliance.py URL TOKEN --verbose        # print each failure's data
    SCIM_TOKEN=... python scripts/scim_compliance.py URL         # token from the environment

Exit status: 0 when no check is an error, critical or deviation, 1 otherwise.

The checks create, read, replace, patch and delete throw-away users and groups named
with random values, and clean them up afterwards; run it against a test organization.

scim2-tester talks to the server through scim2-client. scim2-client ships an engine for
the `httpx2` package; idsync already depends on `httpx`, so `HttpxSCIMClient` below is
the same few lines over `httpx.Client` (which carries the `Authorization` header and
keeps the connection alive).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx
from scim2_client import BaseSyncSCIMClient
from scim2_client.errors import RequestNetworkException
from scim2_tester import CheckResult, Status, check_server

FAILING = frozenset({Status.ERROR, Status.CRITICAL, Status.DEVIATION})


class HttpxSCIMClient(BaseSyncSCIMClient):
    """scim2-client's synchronous engine over an `httpx.Client` (base_url = SCIM root)."""

    def __init__(self, client: httpx.Client, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = client

    def _stays_under_base_url(self, endpoint: str) -> bool:
        base = self.client.base_url
        try:
            url = self.client.build_request("GET", endpoint).url
        except httpx.InvalidURL:
            return False
        return (url.scheme, url.host, url.port) == (
            base.scheme,
            base.host,
            base.port,
        ) and url.raw_path.startswith(base.raw_path)

    def _parse_json(self, response: Any) -> Any:
        return response.json()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.client.request(method, url, **kwargs)
        except httpx.RequestError as exc:
            error = RequestNetworkException()
            error.add_note(str(exc))
            raise error from exc


def scim_http_client(base_url: str, token: str, timeout: float = 30.0) -> httpx.Client:
    """An httpx client whose relative URLs resolve under the SCIM root `base_url`."""
    root = base_url.rstrip("/") + "/"
    return httpx.Client(
        base_url=root,
        headers={"Authorization": f"Bearer {token}"},
        timeout=timeout,
    )


def run_checks(
    base_url: str,
    token: str,
    *,
    include_tags: set[str] | None = None,
    exclude_tags: set[str] | None = None,
    resource_types: list[str] | None = None,
) -> list[CheckResult]:
    """Discover the server and run every scim2-tester check against it."""
    with scim_http_client(base_url, token) as http:
        client = HttpxSCIMClient(http)
        return check_server(
            client,
            include_tags=include_tags,
            exclude_tags=exclude_tags,
            resource_types=resource_types,
        )


def failures(results: Iterable[CheckResult]) -> list[CheckResult]:
    """Results that are an error, critical or deviation."""
    return [r for r in results if r.status in FAILING]


def describe(result: CheckResult, *, with_data: bool = True, limit: int = 2000) -> str:
    """One failing check, with its reason and (truncated) data, for a report."""
    where = f" [{result.resource_type}]" if result.resource_type else ""
    lines = [f"{result.status.name} {result.title}{where}: {result.reason}"]
    if with_data and result.data is not None:
        try:
            data = json.dumps(result.data, indent=1, default=str)
        except (TypeError, ValueError):
            data = repr(result.data)
        if len(data) > limit:
            data = data[:limit] + " …"
        lines.append("    data: " + data.replace("\n", "\n    "))
    return "\n".join(lines)


def table(results: Sequence[CheckResult]) -> str:
    """A fixed-width table: status, resource type, check, reason."""
    rows = [
        (
            r.status.name,
            r.resource_type or "-",
            r.title or "?",
            (r.reason or "").replace("\n", " ")[:90],
        )
        for r in results
    ]
    header = ("STATUS", "RESOURCE", "CHECK", "REASON")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(3)]
    out = []
    for row in [header, *rows]:
        out.append(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}")
    counts: dict[str, int] = {}
    for r in results:
        key = r.status.name
        counts[key] = counts.get(key, 0) + 1
    out.append("")
    out.append(
        f"{len(results)} checks: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("url", help="SCIM base URL, e.g. http://127.0.0.1:8000/scim/v2")
    parser.add_argument("token", nargs="?", help="bearer token (default: $SCIM_TOKEN)")
    parser.add_argument("--include-tag", action="append", dest="include", default=None)
    parser.add_argument("--exclude-tag", action="append", dest="exclude", default=None)
    parser.add_argument("--resource-type", action="append", dest="types", default=None)
    parser.add_argument("--verbose", "-v", action="store_true", help="print failures' data")
    args = parser.parse_args(argv)
    token = args.token or os.environ.get("SCIM_TOKEN")
    if not token:
        parser.error("give a bearer token as the second argument or in $SCIM_TOKEN")
    if urlsplit(args.url).scheme not in ("http", "https"):
        parser.error("url must start with http:// or https://")
    results = run_checks(
        args.url,
        token,
        include_tags=set(args.include) if args.include else None,
        exclude_tags=set(args.exclude) if args.exclude else None,
        resource_types=args.types,
    )
    print(table(results))
    bad = failures(results)
    if bad:
        print("\nFailing checks:")
        for r in bad:
            print(describe(r, with_data=args.verbose))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
