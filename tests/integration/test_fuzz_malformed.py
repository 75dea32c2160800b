"""A seeded fuzz of malformed requests against SCIM and /api/v1 (issue 10): no 5xx.

A deterministic generator (`random.Random(seed)`) builds requests from valid templates
(SCIM Users, Groups, PATCH, Bulk, .search; /api/v1 check, explain, workspaces, Spaces,
roles, bindings, resources, mapping rules, who-can) and breaks them: deep nesting,
encodings (raw surrogate bytes, invalid UTF-8, `\\u0000`, lone `\\ud800`, BOMs), numbers
(2**31, 10**30, 1e400, NaN), sizes, wrong types at any depth, Bulk operation shapes,
truncated and byte-flipped JSON, query strings (filter, count, startIndex, cursor,
attributes), odd ids and paths, and headers (Content-Type, If-Match, Authorization,
X-Request-Id). Every answer must be below 500; a SCIM error must be in the RFC 7644
Error schema with its status, an /api/v1 error JSON with `detail`.

The suite runs FUZZ_REQUESTS per backend (seed FUZZ_SEED). By hand, more:
`IDSYNC_FUZZ_REQUESTS=5000 IDSYNC_FUZZ_SEEDS=1,2,3 pytest tests/integration/test_fuzz_malformed.py`.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from idsync.app import create_app
from idsync.http_guards import install_http_guards
from models.db.admin_keys import create_admin_key
from models.db.database import Database
from models.db.tokens import create_scim_token, get_or_create_org
from tests.conftest import REDIS_TEST_URL
from tests.support.scim_client import group_body, make_settings, user_body

FUZZ_REQUESTS = int(os.environ.get("IDSYNC_FUZZ_REQUESTS", "700"))
FUZZ_SEEDS = [int(s) for s in os.environ.get("IDSYNC_FUZZ_SEEDS", "20240610").split(",")]
SERVICE_TOKEN = "fuzz-service-token"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
_DEEP = re.compile(r'"\\u0001DEEP:(\d+)"')


@dataclass
class World:
    """What exists for the requests to point at."""

    token: str
    key: str
    org_id: str
    user_ids: list[str]
    group_ids: list[str]
    foreign_user: str


@dataclass
class Req:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes = b""
    params: list[tuple[str, str]] = field(default_factory=list)
    note: str = ""


# --- values -----------------------------------------------------------------------


def _deep(rng: random.Random) -> str:
    """A placeholder `encode` turns into arrays/objects nested that many levels (built
    as text: the test's own json.dumps would hit the recursion limit first)."""
    return f"\x01DEEP:{rng.choice([31, 32, 33, 64, 200, 990, 5000, 100_000])}"


def _deep_text(match: re.Match[str]) -> str:
    levels = int(match.group(1))
    opener, closer = ("[", "]") if levels % 2 else ('{"a":', "}")
    return opener * levels + "1" + closer * levels


STRINGS = [
    "",
    " ",
    "x" * 513,
    "x" * 70_000,
    "ünïcödé 😀",
    "\u0000",
    "a\u0000b",
    "\ud800",
    "\udfff",
    "\ud83d\ude00",
    "\ufeff",
    "\n\r\t",
    "'; DROP TABLE scim_users; --",
    '"',
    "\\",
    "bulkId:",
    "bulkId:nope",
    "bulkId:a",
    "*",
    "..",
    "../../etc/passwd",
    "%00",
    'W/"1"',
    "2147483648",
    "-1",
    "true",
    "null",
    "urn:ietf:params:scim:schemas:core:2.0:User",
    'emails[type eq "work"].value',
    'members[value eq "x"]',
    "userName eq",
    "(((((((((((",
]
NUMBERS: list[Any] = [
    0,
    -1,
    1,
    2**31 - 1,
    2**31,
    -(2**31) - 1,
    2**63,
    2**64 + 1,
    10**30,
    -(10**30),
    10**400,
    1.5,
    -0.0,
    1e308,
    1e-320,
    True,
    False,
]


def random_value(rng: random.Random, world: World, depth: int = 0) -> Any:
    roll = rng.random()
    if roll < 0.25:
        return rng.choice(STRINGS)
    if roll < 0.4:
        return rng.choice(NUMBERS)
    if roll < 0.47:
        return None
    if roll < 0.55:
        return rng.choice(world.user_ids + world.group_ids + [world.foreign_user])
    if roll < 0.62:
        return _deep(rng)
    if roll < 0.68:
        return "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 40)))
    if depth > 3:
        return rng.choice(STRINGS)
    if roll < 0.84:
        return [random_value(rng, world, depth + 1) for _ in range(rng.randint(0, 4))]
    return {
        rng.choice([*STRINGS[:12], "value", "type", "op", "path", "display", "$ref"]): (
            random_value(rng, world, depth + 1)
        )
        for _ in range(rng.randint(0, 4))
    }


def mutate(rng: random.Random, world: World, doc: Any, rounds: int = 1) -> Any:
    """Replace, drop or add a field somewhere in `doc` (a copy)."""
    doc = json.loads(json.dumps(doc))
    for _ in range(rounds):
        containers: list[Any] = []
        stack = [doc]
        while stack:
            item = stack.pop()
            if isinstance(item, dict | list):
                containers.append(item)
                stack.extend(item.values() if isinstance(item, dict) else item)
        if not containers:
            return random_value(rng, world)
        target = rng.choice(containers)
        action = rng.random()
        if isinstance(target, dict):
            keys = list(target)
            if keys and action < 0.6:
                target[rng.choice(keys)] = random_value(rng, world)
            elif keys and action < 0.75:
                del target[rng.choice(keys)]
            else:
                target[rng.choice([*STRINGS[:14], "id", "meta", "schemas"])] = random_value(
                    rng, world
                )
        else:
            if target and action < 0.6:
                target[rng.randrange(len(target))] = random_value(rng, world)
            elif target and action < 0.75:
                target.pop(rng.randrange(len(target)))
            else:
                target.append(random_value(rng, world))
    return doc


def encode(rng: random.Random, doc: Any) -> bytes:
    """JSON text of `doc`, sometimes broken at the byte level."""
    text = _DEEP.sub(_deep_text, json.dumps(doc, ensure_ascii=rng.random() < 0.5))
    raw = text.encode("utf-8", "surrogatepass")
    roll = rng.random()
    if roll < 0.55:
        return raw
    if roll < 0.62 and raw:
        return raw[: rng.randrange(len(raw))]  # truncated
    if roll < 0.7 and raw:
        i = rng.randrange(len(raw))
        return raw[:i] + bytes([rng.randrange(256)]) + raw[i + 1 :]  # a flipped byte
    if roll < 0.76:
        return b"\xef\xbb\xbf" + raw  # BOM
    if roll < 0.82 and b'"' in raw:
        i = raw.index(b'"')  # raw surrogate / latin-1 / overlong bytes inside a string
        junk = rng.choice([b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xe9", b"\xc0\xaf", b"\xff\xfe"])
        return raw[: i + 1] + junk + raw[i + 1 :]
    if roll < 0.86:
        return rng.choice([b"", b"null", b"[]", b"1", b'"x"', b"{", b"}", b"NaN", b"-Infinity"])
    if roll < 0.9:
        return raw.replace(b"1", b"NaN", 1).replace(b"0", b"1e999", 1)
    if roll < 0.94 and raw.startswith(b"{") and len(raw) > 2:
        return raw[:-1] + b"," + raw[1:]  # every key twice
    return raw.decode("utf-8", "surrogatepass").encode("utf-16", "surrogatepass")


# --- requests ---------------------------------------------------------------------


def _rid(rng: random.Random, world: World, pool: list[str]) -> str:
    roll = rng.random()
    if roll < 0.6 and pool:
        return rng.choice(pool)
    if roll < 0.7:
        return world.foreign_user
    return rng.choice(
        [
            "00000000-0000-0000-0000-000000000000",
            "%00",
            "a%00b",
            "%ED%A0%80",
            "%FF",
            "x" * 3000,
            "..%2F..",
            "%20",
            "ünï",
            "bulkId:x",
            quote("😀"),
        ]
    )


SCIM_KINDS = [
    *("user", "user", "group", "patch_user", "patch_group", "put", "bulk", "bulk", "search"),
    *("list", "get", "delete", "discovery"),
]


def scim_request(rng: random.Random, world: World) -> Req:
    users, groups = world.user_ids, world.group_ids
    kind = rng.choice(SCIM_KINDS)
    uid, gid = _rid(rng, world, users), _rid(rng, world, groups)
    doc: Any
    if kind == "user":
        doc = user_body(
            f"fz{rng.randrange(10**6)}@x.io", **{ENTERPRISE: {"manager": {"value": uid}}}
        )
        doc["schemas"].append(ENTERPRISE)
        method, path = "POST", "/Users"
    elif kind == "group":
        doc = group_body(f"fz{rng.randrange(10**6)}", [uid])
        method, path = "POST", "/Groups"
    elif kind in ("patch_user", "patch_group"):
        op = rng.choice(["add", "replace", "remove", "Add", "bogus"])
        target = rng.choice(
            [
                None,
                "title",
                "name.givenName",
                "emails",
                'emails[type eq "work"].value',
                f"{ENTERPRISE}:manager",
                "members",
                'members[value eq "x"]',
                "active",
                "displayName",
            ]
        )
        operation: dict[str, Any] = {"op": op, "value": random_value(rng, world)}
        if target is not None:
            operation["path"] = target
        doc = {"schemas": [PATCH_OP], "Operations": [operation]}
        method = "PATCH"
        path = f"/Users/{uid}" if kind == "patch_user" else f"/Groups/{gid}"
    elif kind == "put":
        doc = user_body("put@x.io") if rng.random() < 0.5 else group_body("put", [uid])
        method, path = "PUT", (f"/Users/{uid}" if "userName" in doc else f"/Groups/{gid}")
    elif kind == "bulk":
        ops: list[Any] = []
        for n in range(rng.randint(1, 4)):
            ops.append(
                rng.choice(
                    [
                        {
                            "method": "POST",
                            "bulkId": f"b{n}",
                            "path": "/Users",
                            "data": user_body(f"bk{rng.randrange(10**6)}@x.io"),
                        },
                        {
                            "method": "PATCH",
                            "path": f"/Users/bulkId:b{n - 1}",
                            "data": {"schemas": [PATCH_OP], "Operations": []},
                        },
                        {
                            "method": "PUT",
                            "path": f"/Groups/{gid}",
                            "version": 'W/"1"',
                            "data": group_body("bk", ["bulkId:b0"]),
                        },
                        {"method": "DELETE", "path": f"/Users/{uid}"},
                        {
                            "method": "POST",
                            "path": "/Groups",
                            "data": group_body(f"bg{n}", [f"bulkId:b{n}"]),
                        },
                    ]
                )
            )
        doc = {
            "schemas": [BULK],
            "failOnErrors": rng.choice([None, 1, 0, -1, 2**40]),
            "Operations": ops,
        }
        method, path = "POST", "/Bulk"
    elif kind == "search":
        doc = {
            "schemas": [SEARCH],
            "filter": 'userName sw "fz"',
            "count": 5,
            "startIndex": 1,
            "attributes": ["userName"],
            "sortBy": "userName",
        }
        method, path = "POST", rng.choice(["/Users/.search", "/Groups/.search", "/.search"])
    else:
        doc = None
        method, path = {
            "list": ("GET", rng.choice(["/Users", "/Groups"])),
            "get": ("GET", rng.choice([f"/Users/{uid}", f"/Groups/{gid}"])),
            "delete": ("DELETE", rng.choice([f"/Users/{uid}", f"/Groups/{gid}"])),
            "discovery": (
                "GET",
                rng.choice(
                    [
                        "/ServiceProviderConfig",
                        "/ResourceTypes/User",
                        "/Schemas/x",
                        "/Me",
                        "/Users/",
                        "/ResourceTypes/%00",
                        f"/Schemas/{USER}",
                    ]
                ),
            ),
        }[kind]
    content = b""
    if doc is not None:
        if rng.random() < 0.85:
            doc = mutate(rng, world, doc, rounds=rng.randint(1, 3))
        content = encode(rng, doc)
    headers = {"Authorization": f"Bearer {world.token}", "Content-Type": "application/scim+json"}
    mess_headers(rng, headers)
    req = Req(method, f"/scim/v2{path}", headers, content, note=kind)
    if rng.random() < 0.5:
        req.params = scim_params(rng, world)
    return req


def scim_params(rng: random.Random, world: World) -> list[tuple[str, str]]:
    names = [
        "filter",
        "count",
        "startIndex",
        "attributes",
        "excludedAttributes",
        "sortBy",
        "sortOrder",
        "cursor",
    ]
    values = [
        'userName eq "a"',
        "userName eq",
        'emails[type eq "work" and value co "@"]',
        "(" * 100 + 'userName eq "a"' + ")" * 100,
        " or ".join(['userName eq "a"'] * 600),
        'meta.lastModified gt "not a date"',
        f'members[value eq "{world.foreign_user}"]',
        'userName eq "\u0000"',
        'userName eq "\ud800"',
        "-1",
        "0",
        "2147483648",
        "99999999999999999999999",
        "1e3",
        "",
        "abc",
        "descending",
        "groups,emails",
        "urn:bogus:attr",
        "eyJ4IjoxfQ",
        base64.urlsafe_b64encode(b"[" * 3000 + b"]" * 3000).decode(),
        base64.urlsafe_b64encode(b'{"v":1,"c":"\xed\xa0\x80","i":"\x00"}').decode(),
        "!!!",
    ]
    out = []
    for _ in range(rng.randint(1, 3)):
        value = rng.choice(values)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = "%ED%A0%80"
        out.append((rng.choice(names), value))
    return out


def mess_headers(rng: random.Random, headers: dict[str, str]) -> None:
    roll = rng.random()
    if roll < 0.04:
        headers.pop("Authorization")
    elif roll < 0.07:
        headers["Authorization"] = rng.choice(
            ["Bearer", "Bearer ", "Basic Zm9vOmJhcg==", "bearer  x", "Bearer " + "x" * 5000]
        )
    roll = rng.random()
    if roll < 0.06:
        headers["Content-Type"] = rng.choice(
            [
                "text/plain",
                "application/xml",
                "",
                "application/json; charset=latin-1",
                "application/vnd.x+json",
                "multipart/form-data; boundary=x",
                "*/*",
            ]
        )
    if rng.random() < 0.1:
        headers["If-Match"] = rng.choice(['W/"1"', "*", "5", '"', "W/", ",,,", 'W/"99999999999"'])
    if rng.random() < 0.05:
        headers["If-None-Match"] = rng.choice(['W/"1"', "*", "garbage"])
    if rng.random() < 0.05:
        headers["X-Request-Id"] = rng.choice(["x" * 200, "\t", "ok-id", "a b", "\x7f"])
    if rng.random() < 0.03:
        headers["Content-Encoding"] = "gzip"


def api_request(rng: random.Random, world: World) -> Req:
    users, groups = world.user_ids, world.group_ids
    uid, gid = rng.choice(users), rng.choice(groups)
    check = {"org": world.org_id, "user": uid, "workspace": "w", "grant": "access_agents"}
    resource = {"type": "source", "id": "s1", "labels": {"env": "prod"}, "subsets": {"r": ["EU"]}}
    templates: list[tuple[str, str, Any]] = [
        ("POST", "/check", {**check, "resource": resource}),
        (
            "POST",
            "/check/sync",
            {**check, "source": resource, "destination": "d1", "action": "start"},
        ),
        ("POST", "/check/spaces", {"org": world.org_id, "user": uid, "workspace": "w"}),
        (
            "POST",
            "/check/batch",
            {"org": world.org_id, "min_revision": 1, "checks": [{"type": "check", **check}] * 3},
        ),
        ("POST", "/check/explain", check),
        (
            "POST",
            "/explain",
            {"user": uid, "workspace": "w", "grant": "access_agents", "resource": resource},
        ),
        ("POST", "/who-can", {"workspace": "w", "grant": "access_agents"}),
        (
            "POST",
            "/workspaces",
            {
                "id": f"w{rng.randrange(1000)}",
                "name": "n",
                "permissions_model": "v2",
                "parent_workspace_id": None,
            },
        ),
        ("PATCH", "/workspaces/w", {"name": "renamed", "spaces_enabled": True}),
        ("POST", "/spaces", {"id": f"s{rng.randrange(1000)}", "workspace_id": "w"}),
        (
            "POST",
            "/roles",
            {
                "id": f"r{rng.randrange(1000)}",
                "name": "r",
                "model": "v2",
                "workspace_grants": ["access_agents"],
                "resource_grants": [
                    {"scope": "source", "resource_id": "*", "grants": ["view_data"]}
                ],
            },
        ),
        (
            "POST",
            "/roles",
            {
                "id": "lg",
                "name": "l",
                "model": "legacy",
                "statements": [
                    {
                        "effect": "allow",
                        "actions": ["read"],
                        "resource": "sync",
                        "conditions": {"labels": {"env": "prod"}},
                    }
                ],
            },
        ),
        ("POST", "/bindings/roles", {"group_id": gid, "workspace_id": "w", "role_id": "viewer"}),
        ("POST", "/bindings/org-admins", {"group_id": gid}),
        ("POST", "/bindings/spaces", {"group_id": gid, "workspace_id": "w", "space_id": "s"}),
        ("PUT", "/workspaces/w/resources/source/s1", {"labels": {"env": "prod"}}),
        (
            "PUT",
            "/workspaces/w/parent-models/pm/subset-categories",
            {"categories": [{"name": "region", "required": True}]},
        ),
        (
            "POST",
            "/mapping-rules",
            {
                "attribute": "displayName",
                "match": "regex",
                "pattern": "^ds-(?P<workspace>[a-z]+)$",
                "kind": "org_admin",
                "position": 1,
            },
        ),
        (
            "PUT",
            "/mapping-rules/mr",
            {
                "attribute": "externalId",
                "match": "prefix",
                "pattern": "x",
                "kind": "space",
                "space": "s",
            },
        ),
        ("POST", "/mapping-rules/apply", None),
        ("GET", "/mapping-rules/problems", None),
        ("GET", f"/users/{_rid(rng, world, users)}/permissions", None),
        ("GET", "/bindings", None),
        ("GET", "/spaces", None),
        ("GET", f"/workspaces/{_rid(rng, world, ['w'])}", None),
        ("DELETE", f"/roles/{_rid(rng, world, ['r1'])}", None),
        ("DELETE", f"/bindings/roles/{_rid(rng, world, [])}", None),
        ("GET", "/reports/legacy-conflicts", None),
        ("GET", "/organization/", None),
    ]
    method, path, doc = rng.choice(templates)
    content = b""
    if doc is not None:
        if rng.random() < 0.85:
            doc = mutate(rng, world, doc, rounds=rng.randint(1, 3))
        content = encode(rng, doc)
    token = SERVICE_TOKEN if path.startswith("/check") and rng.random() < 0.3 else world.key
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    mess_headers(rng, headers)
    req = Req(method, f"/api/v1{path}", headers, content, note=path)
    if rng.random() < 0.2:
        req.params = [
            (
                rng.choice(["workspace_id", "group_id", "source", "builtin", "x"]),
                rng.choice(["w", "", "%00", "true", "maybe", "x" * 2000, "\u0000"]),
            )
        ]
    return req


def requests_for(seed: int, world: World, count: int) -> Iterator[Req]:
    rng = random.Random(seed)
    for _ in range(count):
        maker: Callable[[random.Random, World], Req] = (
            scim_request if rng.random() < 0.55 else api_request
        )
        yield maker(rng, world)


# --- the test ---------------------------------------------------------------------


@pytest.fixture
def fuzz_world(database: Database) -> Iterator[tuple[TestClient, World]]:
    with database.write() as s:
        org = get_or_create_org(s, "acme")
        other = get_or_create_org(s, "globex")
        token = create_scim_token(s, org, "fuzz")
        other_token = create_scim_token(s, other, "fuzz")
        key = create_admin_key(s, org, "fuzz")
        org_id = org.id
    settings = make_settings(CACHE_REDIS_URL=REDIS_TEST_URL, IDSYNC_CHECK_API_TOKEN=SERVICE_TOKEN)
    app = create_app(settings, db=database)
    install_http_guards(app, database, settings)  # a no-op once create_app installs them
    with TestClient(app, base_url="http://idsync.test", raise_server_exceptions=False) as client:
        h = {"Authorization": f"Bearer {token}"}
        users = [
            client.post("/scim/v2/Users", json=user_body(f"u{i}@x.io"), headers=h).json()["id"]
            for i in range(3)
        ]
        groups = [
            client.post("/scim/v2/Groups", json=group_body(f"g{i}", users), headers=h).json()["id"]
            for i in range(2)
        ]
        foreign = client.post(
            "/scim/v2/Users",
            json=user_body("foreign@y.io"),
            headers={"Authorization": f"Bearer {other_token}"},
        ).json()["id"]
        a = {"Authorization": f"Bearer {key}"}
        assert client.post("/api/v1/workspaces", json={"id": "w"}, headers=a).status_code == 201
        client.post("/api/v1/spaces", json={"id": "s", "workspace_id": "w"}, headers=a)
        yield client, World(token, key, org_id, users, groups, foreign)


def _problem(req: Req, status: int, body: bytes, ctype: str) -> str | None:
    if status >= 500 and not (status == 501 and req.path == "/scim/v2/Me"):  # documented
        return f"{status}"
    if status < 400 or req.method == "HEAD":
        return None
    if "json" not in ctype:
        return f"{status} with Content-Type {ctype!r}"
    try:
        doc = json.loads(body)
    except ValueError:
        return f"{status} with a body that is not JSON"
    if req.path.startswith("/scim/v2"):
        if doc.get("schemas") != [ERROR] or doc.get("status") != str(status):
            return f"{status} not in the SCIM Error schema: {doc}"
    elif not isinstance(doc, dict) or "detail" not in doc:
        return f"{status} without detail: {doc}"
    return None


@pytest.mark.parametrize("seed", FUZZ_SEEDS)
def test_malformed_requests_never_get_a_5xx(
    fuzz_world: tuple[TestClient, World], seed: int
) -> None:
    client, world = fuzz_world
    failures: list[str] = []
    statuses: dict[int, int] = {}
    for n, req in enumerate(requests_for(seed, world, FUZZ_REQUESTS)):
        r = client.request(
            req.method,
            req.path,
            content=req.content or None,
            headers={k: v.encode("latin-1") for k, v in req.headers.items()},
            params=req.params or None,
            follow_redirects=False,
        )
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        problem = _problem(req, r.status_code, r.content, r.headers.get("content-type", ""))
        if problem is not None:
            failures.append(
                f"#{n} {req.method} {req.path} params={req.params} ({req.note}): {problem}\n"
                f"    body={req.content[:300]!r}\n    answer={r.content[:300]!r}"
            )
    assert not failures, f"{len(failures)} of {FUZZ_REQUESTS}:\n" + "\n".join(failures[:20])
    # the generator reaches past the parsers: some requests succeed, most are refused
    assert sum(v for k, v in statuses.items() if k < 300) > FUZZ_REQUESTS // 50, statuses
    assert sum(v for k, v in statuses.items() if 400 <= k < 500) > FUZZ_REQUESTS // 2, statuses
