"""idsync vs scim2-server, side by side on this machine.

    python bench/bench_scim.py            # the full run (10k and 100k users; ~10 minutes)
    python bench/bench_scim.py --quick    # a smoke run with small sizes (< 2 minutes)

Both servers run in their own process on loopback, one process each, so the load
generator (this process) competes with neither for the GIL:

- **idsync**: `uvicorn idsync.asgi:app` (one worker, production settings, INFO request
  logs to /dev/null, no REDIS_URL: the SCIM service alone, without the after-commit hook
  that marks users dirty in Redis) on a throw-away PostgreSQL database that this script creates,
  migrates (`idsync db upgrade`'s code) and drops. PostgreSQL: $IDSYNC_BENCH_PG_URL,
  default postgresql://postgres@127.0.0.1:5432/postgres (admin connection).
- **scim2-server** (the python-scim reference server, in memory): this same file re-run
  with `--serve-scim2-server`, which builds the application exactly as the
  `scim2-server` command does (default RFC 7643 schemas, `InMemoryStorage`, bearer
  token) and serves it with uvicorn's WSGI interface (HTTP/1.1 keep-alive, each request
  run in a worker thread: the same HTTP server and threading as idsync; werkzeug is not
  installed here, and the `scim2-server` command's wsgiref server closes the connection
  after every request). Its request log is off; idsync's INFO request log is on.

Seeding (not measured): idsync's users and the big group's memberships are COPYed into
PostgreSQL in the shape the API stores (the same `normalize_resource` document, columns
and indexes), then ANALYZEd. scim2-server's are created through its storage API
(`InMemoryStorage.create`, which its HTTP handlers call) from a seeding endpoint that
the wrapper adds next to the SCIM routes, because creating 100k users over HTTP at
~500/s would take minutes. Every *measured* operation goes over HTTP with bearer auth:
httpx clients with keep-alive, a fixed number of iterations after a short warm-up,
latencies from perf_counter, p50 and p99 by nearest rank.

Both servers run at the same time, and every measurement alternates between them in
rounds (idsync then scim2-server, then the other way round, six rounds in all): this
machine's noise comes and goes over seconds, and a server measured entirely after the
other could land in a quieter or a busier stretch. Latencies pool the samples of all
rounds; creates/s is all creates over all the time spent creating.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM_JSON = "application/scim+json"
PG_ADMIN_URL = os.environ.get(
    "IDSYNC_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
PAGE_FILTER = "active eq true"


@dataclass(frozen=True)
class Sizes:
    small: int  # users for the "10k" rows
    large: int  # users for the "100k" lookup row
    group_members: int
    creates: int
    lookups: int
    pages: int
    member_adds: int
    group_reads: int
    concurrency: int = 8
    warmup: int = 5
    rounds: int = 6  # alternating blocks per measurement (see `timed`)


FULL = Sizes(
    small=10_000,
    large=100_000,
    group_members=5_000,
    creates=2_000,
    lookups=1_000,
    pages=100,
    member_adds=60,
    group_reads=100,
)
QUICK = Sizes(
    small=2_000,
    large=10_000,
    group_members=1_000,
    creates=300,
    lookups=200,
    pages=20,
    member_adds=15,
    group_reads=20,
)


def user_body(name: str, i: int) -> dict[str, Any]:
    """What an IdP POSTs (and what seeding stores, for both servers)."""
    return {
        "schemas": [CORE_USER],
        "userName": name,
        "externalId": f"ext-{name}",
        "name": {"givenName": f"Given{i}", "familyName": f"Family{i}"},
        "displayName": f"Given{i} Family{i}",
        "emails": [{"value": name, "type": "work", "primary": True}],
        "active": True,
    }


def seed_name(i: int) -> str:
    return f"user{i:07d}@example.com"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


@contextlib.contextmanager
def server_process(cmd: list[str], env: dict[str, str], probe: str) -> Iterator[None]:
    proc = subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_ready(probe, proc)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- the two targets ------------------------------------------------------------------


class Target:
    """A running server: its SCIM base URL and token, plus how to seed it."""

    name: str
    base: str
    token: str

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": SCIM_JSON},
            timeout=120.0,
        )

    def seed_users(self, start: int, count: int) -> list[str]:
        raise NotImplementedError

    def seed_group(self, name: str, member_ids: list[str]) -> str:
        raise NotImplementedError


class IdsyncTarget(Target):
    name = "idsync"

    def __init__(self, base: str, token: str, db_url: str, org_id: str) -> None:
        self.base = base
        self.token = token
        self.db_url = db_url
        self.org_id = org_id
        self._clock = datetime(2024, 1, 1, tzinfo=UTC)

    def _pg(self) -> Any:
        import psycopg

        return psycopg.connect(self.db_url.replace("postgresql+psycopg://", "postgresql://"))

    def _tick(self) -> datetime:
        self._clock += timedelta(microseconds=10)
        return self._clock

    def seed_users(self, start: int, count: int) -> list[str]:
        from scim.normalize import normalize_resource
        from scim.schemas import USER_RESOURCE
        from scim.users import with_default_active

        ids: list[str] = []
        with self._pg() as conn, conn.cursor() as cur:
            with cur.copy(
                "COPY scim_users (id, org_id, user_name, user_name_norm, external_id,"
                " display_name, active, attrs, version, created_at, updated_at) FROM STDIN"
            ) as copy:
                for i in range(start, start + count):
                    name = seed_name(i)
                    doc = with_default_active(
                        normalize_resource(
                            user_body(name, i), USER_RESOURCE, mode="create"
                        ).document
                    )
                    uid = str(uuid.uuid4())
                    ids.append(uid)
                    ts = self._tick()
                    copy.write_row(
                        (
                            uid,
                            self.org_id,
                            name,
                            name.lower(),
                            doc.get("externalId"),
                            doc.get("displayName"),
                            bool(doc["active"]),
                            json.dumps(doc),
                            1,
                            ts,
                            ts,
                        )
                    )
            cur.execute("ANALYZE scim_users")
        return ids

    def seed_group(self, name: str, member_ids: list[str]) -> str:
        gid = str(uuid.uuid4())
        doc = {"displayName": name}
        ts = self._tick()
        with self._pg() as conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO scim_groups (id, org_id, display_name, display_name_norm,"
                " external_id, attrs, version, created_at, updated_at)"
                " VALUES (%s, %s, %s, %s, NULL, %s, 1, %s, %s)",
                (gid, self.org_id, name, name.lower(), json.dumps(doc), ts, ts),
            )
            with cur.copy(
                "COPY scim_group_members (group_id, user_id, org_id, created_at) FROM STDIN"
            ) as copy:
                for uid in member_ids:
                    copy.write_row((gid, uid, self.org_id, ts))
            cur.execute("ANALYZE scim_groups")
            cur.execute("ANALYZE scim_group_members")
        return gid

    def explain_lookup(self, user_name: str) -> str:
        """EXPLAIN ANALYZE of what a `userName eq` list request runs: the prebuilt keyed
        page statement (`scim.listing.keyed_page`, with each user's groups), and the
        COUNT a full page would add (a lookup's page is never full)."""
        from sqlalchemy import create_engine, func, select
        from sqlalchemy.dialects import postgresql

        from scim.filter.keyed import keyed_lookup
        from scim.filter.parser import parse_filter
        from scim.listing import filtered_query, keyed_page
        from scim.schemas import USER_RESOURCE
        from scim.users import groups_column

        flt = parse_filter(f'userName eq "{user_name}"')
        lookup = keyed_lookup(flt, USER_RESOURCE, "postgresql")
        assert lookup is not None
        page = keyed_page(USER_RESOURCE, lookup, groups_column, "postgresql").params(
            org_id=self.org_id, value=lookup.value, offset=0, limit=100
        )
        query = filtered_query(USER_RESOURCE, self.org_id, flt, "postgresql")
        count = select(func.count()).select_from(query.order_by(None).subquery())
        dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
        out: list[str] = []
        engine = create_engine(self.db_url)
        try:
            with engine.connect() as conn:
                for label, stmt in (
                    ("page (the one statement a lookup runs)", page),
                    ("count (only run when a page is full, so not for a lookup)", count),
                ):
                    sql = str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
                    plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, COSTS OFF) " + sql).all()
                    out.append(f"-- {label}:\n{sql}\n" + "\n".join(r[0] for r in plan))
        finally:
            engine.dispose()
        return "\n\n".join(out)


class Scim2ServerTarget(Target):
    name = "scim2-server"

    def __init__(self, base: str, token: str, root: str) -> None:
        self.base = base
        self.token = token
        self.root = root

    def seed_users(self, start: int, count: int) -> list[str]:
        ids: list[str] = []
        with httpx.Client(timeout=600.0) as http:
            for chunk in range(start, start + count, 5_000):
                n = min(5_000, start + count - chunk)
                r = http.post(f"{self.root}/_bench/seed_users", json={"start": chunk, "count": n})
                r.raise_for_status()
                ids.extend(r.json())
        return ids

    def seed_group(self, name: str, member_ids: list[str]) -> str:
        with httpx.Client(timeout=600.0) as http:
            r = http.post(
                f"{self.root}/_bench/seed_group", json={"name": name, "members": member_ids}
            )
            r.raise_for_status()
            return str(r.json())


# --- scim2-server, served by this file ------------------------------------------------


def serve_scim2_server(port: int, token: str) -> None:
    """Build the app as the `scim2-server` command does, add the seeding endpoints, and
    serve it with uvicorn's WSGI interface (HTTP/1.1 keep-alive, a thread per request)."""
    from scim2_models import ScimProvider
    from scim2_server.memory import InMemoryStorage
    from scim2_server.service import ScimService
    from scim2_server.testserver.application import BEARER_TOKEN_SCHEME, BearerTokenApplication
    from scim2_server.utils import (
        load_default_resource_types,
        load_default_schemas,
        load_default_service_provider_config,
    )

    config = load_default_service_provider_config()
    config.authentication_schemes = [*(config.authentication_schemes or []), BEARER_TOKEN_SCHEME]
    provider = ScimProvider.from_discovery(
        load_default_schemas().values(), load_default_resource_types().values(), config=config
    )
    service = ScimService(provider, secret=secrets.token_urlsafe(32))
    storage = InMemoryStorage()
    app = BearerTokenApplication(storage, provider, service=service, bearer_tokens=[token])
    types = {rt.name: rt for rt in provider.resource_types}
    user_model: Any = provider.model_for(types["User"])
    group_model: Any = provider.model_for(types["Group"])

    def seed(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/_bench/"):
            return app(environ, start_response)
        size = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(size) or b"null")
        result: Any
        if path == "/_bench/seed_users":
            result = []
            for i in range(body["start"], body["start"] + body["count"]):
                data = user_body(seed_name(i), i)
                created = storage.create(types["User"], user_model.model_validate(data))
                result.append(created.id)
        elif path == "/_bench/seed_group":
            group = group_model.model_validate(
                {
                    "schemas": [CORE_GROUP],
                    "displayName": body["name"],
                    "members": [{"value": uid, "type": "User"} for uid in body["members"]],
                }
            )
            result = storage.create(types["Group"], group).id
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        payload = json.dumps(result).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [payload]

    import uvicorn

    uvicorn.run(
        seed,
        host="127.0.0.1",
        port=port,
        interface="wsgi",
        access_log=False,
        log_level="warning",
    )


# --- measurement ----------------------------------------------------------------------


@dataclass
class Latency:
    samples: list[float] = field(default_factory=list)

    def pct(self, p: float) -> float:
        ordered = sorted(self.samples)
        rank = max(1, math.ceil(p / 100 * len(ordered)))
        return ordered[rank - 1] * 1000

    @property
    def p50(self) -> float:
        return statistics.median(self.samples) * 1000

    @property
    def p99(self) -> float:
        return self.pct(99)


def timed(
    clients: dict[str, httpx.Client],
    n: int,
    warmup: int,
    requests: dict[str, Callable[[httpx.Client, int], httpx.Response]],
    check: Callable[[httpx.Response], None],
    rounds: int,
) -> dict[str, Latency]:
    """`n` requests per server, in `rounds` blocks that alternate between the servers
    (A B, B A, A B, …), so that both sample the same stretches of this noisy machine."""
    for name, request in requests.items():
        for i in range(warmup):
            check(request(clients[name], -1 - i))
    out = {name: Latency() for name in requests}
    names = list(requests)
    done = 0
    for r in range(rounds):
        block = (n - done) // (rounds - r)
        for name in names if r % 2 == 0 else reversed(names):
            client, request, samples = clients[name], requests[name], out[name].samples
            for i in range(done, done + block):
                t0 = time.perf_counter()
                resp = request(client, i)
                samples.append(time.perf_counter() - t0)
                check(resp)
        done += block
    return out


def expect(status: int, *more: int) -> Callable[[httpx.Response], None]:
    allowed = (status, *more)

    def check(r: httpx.Response) -> None:
        if r.status_code not in allowed:
            raise RuntimeError(
                f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:300]}"
            )

    return check


def measure_creates(target: Target, total: int, workers: int, tag: str) -> tuple[int, float]:
    """(creates, seconds) with `workers` concurrent keep-alive clients, `total` in all."""
    per = total // workers
    errors: list[str] = []
    barrier = threading.Barrier(workers + 1)

    def work(w: int) -> None:
        with target.client() as c:
            c.get("/ServiceProviderConfig")  # open the connection
            barrier.wait()
            for i in range(per):
                name = f"new-{tag}-{w}-{i}@example.com"
                r = c.post("/Users", json=user_body(name, i))
                if r.status_code != 201:
                    errors.append(f"{r.status_code} {r.text[:200]}")
                    return

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{target.name} create failed: {errors[0]}")
    return per * workers, elapsed


@dataclass
class Results:
    creates_per_s: float = 0.0
    lookup_small: Latency | None = None
    lookup_large: Latency | None = None
    page_small: Latency | None = None
    member_add: Latency | None = None
    group_read: Latency | None = None
    walk: dict[str, float] = field(default_factory=dict)  # idsync: paging method -> s
    explain: str = ""


def run_all(targets: list[Target], sizes: Sizes, log: Callable[[str], None]) -> dict[str, Results]:
    """Every measurement, the servers interleaved round by round (see `timed`)."""
    res = {t.name: Results() for t in targets}
    by_name = {t.name: t for t in targets}
    rounds = sizes.rounds
    ids: dict[str, list[str]] = {}
    for t in targets:
        t0 = time.perf_counter()
        ids[t.name] = t.seed_users(0, sizes.small)
        log(f"{t.name}: seeded {sizes.small} users in {time.perf_counter() - t0:.1f}s")
    rngs = {t.name: random.Random(7) for t in targets}  # the same names for every server

    def lookups(population: int) -> dict[str, Callable[[httpx.Client, int], httpx.Response]]:
        def make(rng: random.Random) -> Callable[[httpx.Client, int], httpx.Response]:
            def req(c: httpx.Client, _i: int) -> httpx.Response:
                name = seed_name(rng.randrange(population))
                return c.get("/Users", params={"filter": f'userName eq "{name}"'})

            return req

        return {name: make(rng) for name, rng in rngs.items()}

    def one_result(r: httpx.Response) -> None:
        expect(200)(r)
        if r.json()["totalResults"] != 1:
            raise RuntimeError(f"lookup did not find exactly one user: {r.text[:300]}")

    def report(label: str, measured: dict[str, Latency]) -> None:
        for name, lat in measured.items():
            setattr(res[name], label, lat)
            log(f"{name}: {label}: p50 {lat.p50:.1f} ms, p99 {lat.p99:.1f} ms")

    with contextlib.ExitStack() as stack:
        clients = {t.name: stack.enter_context(t.client()) for t in targets}
        report(
            "lookup_small",
            timed(clients, sizes.lookups, sizes.warmup, lookups(sizes.small), one_result, rounds),
        )

        pages = sizes.small // 100

        def page_of(rng: random.Random) -> Callable[[httpx.Client, int], httpx.Response]:
            def page(c: httpx.Client, _i: int) -> httpx.Response:
                start = rng.randrange(pages) * 100 + 1
                return c.get(
                    "/Users", params={"filter": PAGE_FILTER, "startIndex": start, "count": 100}
                )

            return page

        def full_page(r: httpx.Response) -> None:
            expect(200)(r)
            if len(r.json()["Resources"]) != 100:
                raise RuntimeError(f"page is not 100 users: {r.text[:300]}")

        page_requests = {name: page_of(rng) for name, rng in rngs.items()}
        report("page_small", timed(clients, sizes.pages, 2, page_requests, full_page, rounds))

        gids: dict[str, str] = {}
        for t in targets:
            t0 = time.perf_counter()
            gids[t.name] = t.seed_group("bench-big-group", ids[t.name][: sizes.group_members])
            log(
                f"{t.name}: seeded a {sizes.group_members}-member group in "
                f"{time.perf_counter() - t0:.1f}s"
            )

        def adder(name: str) -> Callable[[httpx.Client, int], httpx.Response]:
            outsiders = iter(ids[name][sizes.group_members :])

            def add_member(c: httpx.Client, _i: int) -> httpx.Response:
                uid = next(outsiders)
                return c.patch(
                    f"/Groups/{gids[name]}",
                    json={
                        "schemas": [PATCH_OP],
                        "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}],
                    },
                )

            return add_member

        adds = {name: adder(name) for name in by_name}
        report("member_add", timed(clients, sizes.member_adds, 2, adds, expect(200, 204), rounds))

        def reader(name: str) -> Callable[[httpx.Client, int], httpx.Response]:
            def read_group(c: httpx.Client, _i: int) -> httpx.Response:
                return c.get(f"/Groups/{gids[name]}", params={"excludedAttributes": "members"})

            return read_group

        def no_members(r: httpx.Response) -> None:
            expect(200)(r)
            if "members" in r.json():
                raise RuntimeError("excludedAttributes=members returned members")

        reads = {name: reader(name) for name in by_name}
        report("group_read", timed(clients, sizes.group_reads, 2, reads, no_members, rounds))

    created = {t.name: 0 for t in targets}
    spent = {t.name: 0.0 for t in targets}
    per_round = sizes.creates // rounds
    for r in range(rounds):
        for t in targets if r % 2 == 0 else list(reversed(targets)):
            count, elapsed = measure_creates(t, per_round, sizes.concurrency, f"c{r}")
            created[t.name] += count
            spent[t.name] += elapsed
    for t in targets:
        res[t.name].creates_per_s = created[t.name] / spent[t.name]
        log(f"{t.name}: {res[t.name].creates_per_s:.0f} creates/s")

    for t in targets:
        t0 = time.perf_counter()
        t.seed_users(sizes.small, sizes.large - sizes.small)
        log(f"{t.name}: seeded up to {sizes.large} users in {time.perf_counter() - t0:.1f}s")
    with contextlib.ExitStack() as stack:
        clients = {t.name: stack.enter_context(t.client()) for t in targets}
        report(
            "lookup_large",
            timed(clients, sizes.lookups, sizes.warmup, lookups(sizes.large), one_result, rounds),
        )
    for t in targets:
        if isinstance(t, IdsyncTarget):
            res[t.name].walk = walk_all(t, sizes.large, rounds=2)
            for method, seconds in res[t.name].walk.items():
                log(f"{t.name}: walk of {sizes.large} users by {method}: {seconds:.2f} s")
            res[t.name].explain = t.explain_lookup(seed_name(sizes.large // 2))
    return res


def walk_all(target: Target, population: int, rounds: int) -> dict[str, float]:
    """Seconds to read every user in 100-user pages, by `startIndex` and by RFC 9865
    `cursor`, alternating (idsync only: the reference is its own index paging)."""
    spent = {"startIndex": 0.0, "cursor": 0.0}

    def by_index(c: httpx.Client) -> int:
        seen = 0
        for start in range(1, population + 1, 100):
            r = c.get("/Users", params={"startIndex": start, "count": 100})
            expect(200)(r)
            seen += len(r.json()["Resources"])
        return seen

    def by_cursor(c: httpx.Client) -> int:
        seen, cursor = 0, ""
        while True:
            r = c.get("/Users", params={"cursor": cursor, "count": 100})
            expect(200)(r)
            body = r.json()
            seen += len(body["Resources"])
            if "nextCursor" not in body:
                return seen
            cursor = body["nextCursor"]

    walks = {"startIndex": by_index, "cursor": by_cursor}
    with target.client() as c:
        for r in range(rounds):
            for method in walks if r % 2 == 0 else reversed(list(walks)):
                t0 = time.perf_counter()
                seen = walks[method](c)
                spent[method] += time.perf_counter() - t0
                if seen < population:
                    raise RuntimeError(f"{method} walk saw {seen} of {population} users")
    return {method: seconds / rounds for method, seconds in spent.items()}


# --- orchestration --------------------------------------------------------------------


@contextlib.contextmanager
def idsync_target() -> Iterator[IdsyncTarget]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from models.db.database import Database
    from models.db.migrate import upgrade
    from models.db.session import normalize_url
    from models.db.tokens import create_scim_token, get_or_create_org

    admin = create_engine(normalize_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    name = f"idsync_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(normalize_url(PG_ADMIN_URL)).set(database=name)
    db_url = url.render_as_string(hide_password=False)
    plain_url = url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        upgrade(db_url)
        db = Database(db_url)
        with db.write() as session:
            org = get_or_create_org(session, "bench")
            token = create_scim_token(session, org, "bench")
            org_id = org.id
        db.dispose()
        port = free_port()
        with tempfile.TemporaryDirectory() as data_dir:
            # The SCIM service alone, as scim2-server is: no REDIS_URL, so no after-commit
            # hook marking users dirty in Redis (bench_freshness.py measures that path).
            env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CACHE_REDIS_URL")}
            env.update(DATABASE_URL=plain_url, IDSYNC_DATA_DIR=data_dir, PYTHONPATH=str(ROOT))
            cmd = [
                sys.executable, "-m", "uvicorn", "idsync.asgi:app",
                "--host", "127.0.0.1", "--port", str(port),
                "--no-access-log", "--log-level", "warning",
            ]  # fmt: skip
            root = f"http://127.0.0.1:{port}"
            with server_process(cmd, env, f"{root}/healthz"):
                yield IdsyncTarget(f"{root}/scim/v2", token, db_url, org_id)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def scim2_server_target() -> Iterator[Scim2ServerTarget]:
    port = free_port()
    token = "b" + secrets.token_urlsafe(24)  # never starts with "-" (argparse would take it)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serve-scim2-server", str(port), token]
    root = f"http://127.0.0.1:{port}"
    with server_process(cmd, {**os.environ, "PYTHONPATH": str(ROOT)}, f"{root}/v2/Schemas"):
        yield Scim2ServerTarget(f"{root}/v2", token, root)


def fmt_ms(v: float) -> str:
    return f"{v:.1f} ms" if v < 100 else f"{v:.0f} ms"


def table(a: Results, b: Results, sizes: Sizes) -> str:
    def k(n: int) -> str:
        return f"{n // 1000}k" if n >= 1000 else str(n)

    rows: list[tuple[str, str, str, str, bool]] = []
    rows.append(
        (
            f"user creates/s, {sizes.concurrency} concurrent clients (at {k(sizes.small)} users)",
            f"{a.creates_per_s:.0f}",
            f"{b.creates_per_s:.0f}",
            f"{a.creates_per_s / b.creates_per_s:.2f}",
            a.creates_per_s > b.creates_per_s,
        )
    )

    def lat(label: str, x: Latency | None, y: Latency | None) -> None:
        assert x is not None and y is not None
        for p in ("p50", "p99"):
            vx, vy = getattr(x, p), getattr(y, p)
            rows.append((f"{label} {p}", fmt_ms(vx), fmt_ms(vy), f"{vx / vy:.3f}", vx < vy))

    lat(f"lookup `userName eq`, {k(sizes.small)} users", a.lookup_small, b.lookup_small)
    lat(f"lookup `userName eq`, {k(sizes.large)} users", a.lookup_large, b.lookup_large)
    lat(
        f"100-user page, `filter={PAGE_FILTER}`, {k(sizes.small)} users",
        a.page_small,
        b.page_small,
    )
    lat(f"add 1 member to a {k(sizes.group_members)}-member group", a.member_add, b.member_add)
    lat("read that group, `excludedAttributes=members`", a.group_read, b.group_read)
    header = "| operation | idsync | scim2-server | idsync/scim2-server | idsync ahead |"
    lines = [header, "|---|---:|---:|---:|:---:|"]
    lines += [f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {'yes' if r[4] else 'NO'} |" for r in rows]
    return "\n".join(lines)


def machine() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; load average at the end {load}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="idsync vs scim2-server SCIM benchmark")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--only", choices=["idsync", "scim2-server"], help="run one server (for profiling)"
    )
    parser.add_argument("--serve-scim2-server", nargs=2, metavar=("PORT", "TOKEN"))
    args = parser.parse_args(argv)
    if args.serve_scim2_server:
        serve_scim2_server(int(args.serve_scim2_server[0]), args.serve_scim2_server[1])
        return 0
    sizes = QUICK if args.quick else FULL
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {msg}", file=sys.stderr, flush=True)

    log(f"{'quick' if args.quick else 'full'} run: {sizes}")
    with contextlib.ExitStack() as stack:
        targets: list[Target] = []
        if args.only in (None, "idsync"):
            targets.append(stack.enter_context(idsync_target()))
        if args.only in (None, "scim2-server"):
            targets.append(stack.enter_context(scim2_server_target()))
        results = run_all(targets, sizes, log)

    print(f"\n# idsync vs scim2-server ({'--quick' if args.quick else 'full'})")
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine()}\n")
    if len(results) == 2:
        print(table(results["idsync"], results["scim2-server"], sizes))
    else:
        for name, r in results.items():
            print(f"{name}: creates/s {r.creates_per_s:.0f}")
            for label in ("lookup_small", "lookup_large", "page_small", "member_add", "group_read"):
                v = getattr(r, label)
                print(f"  {label}: p50 {v.p50:.2f} ms  p99 {v.p99:.2f} ms")
    walk = results["idsync"].walk if "idsync" in results else {}
    if walk:
        print(
            f"\nidsync, every one of the {sizes.large} users in 100-user pages (mean of 2 "
            f"alternating walks): startIndex {walk['startIndex']:.2f} s, RFC 9865 cursor "
            f"{walk['cursor']:.2f} s ({walk['cursor'] / walk['startIndex']:.2f}x)"
        )
    if "idsync" in results:
        print(
            "\nEXPLAIN ANALYZE of idsync's `userName eq` lookup on PostgreSQL "
            f"({sizes.large} users):\n"
        )
        print(results["idsync"].explain)
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
