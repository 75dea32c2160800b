"""Permission-cache benchmarks, one command; every ratio is against a reference measured
in the same run on the same Redis.

    python bench/bench_cache.py                       # everything, default sizes
    python bench/bench_cache.py --users 20000 --trials 50 --skip-http   # quicker

Sections: full rebuild (time, peak RSS, Redis bytes/user) at U users x G groups x W
workspaces; Python check client vs raw redis-py GET / SISMEMBER; batch of 100 = one
round trip; HTTP check API checks/s (one uvicorn process); freshness with a real
Celery worker (group removal, deactivation, role change on a 10k-member group).

Needs PostgreSQL (IDSYNC_BENCH_PG_URL, default postgresql://postgres@127.0.0.1:5432/postgres;
a throw-away database is created) and Redis (IDSYNC_BENCH_REDIS, default
redis://127.0.0.1:6379; databases 10 = broker and 11 = cache are flushed).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import redis  # noqa: E402
from sqlalchemy import create_engine, insert, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from models.cache.client import Check, CheckClient  # noqa: E402
from models.cache.writer import CacheWriter  # noqa: E402
from models.db.base import utcnow  # noqa: E402
from models.db.config_tables import ConfigWorkspace, RoleBindingRow  # noqa: E402
from models.db.database import Database  # noqa: E402
from models.db.metadata import metadata  # noqa: E402
from models.db.session import normalize_url  # noqa: E402
from models.db.tables import Group, GroupMember, Organization, User  # noqa: E402
from worker.rebuild import rebuild  # noqa: E402

PG = os.environ.get("IDSYNC_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("IDSYNC_BENCH_REDIS", "redis://127.0.0.1:6379")
BROKER_URL, CACHE_URL = f"{REDIS}/10", f"{REDIS}/11"
ROLES = ("viewer", "editor", "draft_editor", "admin")


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def ms(x: float) -> str:
    return f"{x * 1000:.2f} ms"


def section(title: str) -> None:
    print(f"\n== {title}")


# --- data ----------------------------------------------------------------------------


def create_db() -> tuple[str, Callable[[], None]]:
    admin = create_engine(normalize_url(PG), isolation_level="AUTOCOMMIT")
    name = f"idsync_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(normalize_url(PG)).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


def populate(db: Database, users: int, groups: int, workspaces: int, seed: int = 7) -> str:
    """An org where users share group sets the way teams do: each user takes one of a few
    hundred team templates (3 groups each, Zipf-popular), 20% also one random group."""
    rnd = random.Random(seed)
    org_id = str(uuid.uuid4())
    now = utcnow()
    with db.engine.begin() as c:
        c.execute(
            insert(Organization),
            [{"id": org_id, "name": f"bench-{org_id[:8]}", "revision": 0, "created_at": now}],
        )
        c.execute(
            insert(ConfigWorkspace),
            [
                {
                    "org_id": org_id,
                    "id": f"ws{i}",
                    "name": f"ws{i}",
                    "permissions_model": "v2",
                    "spaces_enabled": False,
                    "approvals_required": False,
                    "parent_workspace_id": None,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(workspaces)
            ],
        )
        gids = [str(uuid.uuid4()) for _ in range(groups)]
        c.execute(
            insert(Group),
            [
                {
                    "id": g,
                    "org_id": org_id,
                    "display_name": f"g{i}",
                    "display_name_norm": f"g{i}",
                    "external_id": None,
                    "attrs": {},
                    "version": 1,
                    "created_at": now,
                    "updated_at": now,
                }
                for i, g in enumerate(gids)
            ],
        )
        c.execute(
            insert(RoleBindingRow),
            [
                {
                    "id": str(uuid.uuid4()),
                    "org_id": org_id,
                    "group_id": g,
                    "workspace_id": f"ws{i % workspaces}",
                    "role_id": ROLES[i % len(ROLES)],
                    "source": "manual",
                    "created_at": now,
                }
                for i, g in enumerate(gids)
            ],
        )
        templates = [rnd.sample(gids, 3) for _ in range(400)]
        weights = [1 / (k + 1) for k in range(len(templates))]
        uids = [str(uuid.uuid4()) for _ in range(users)]
        for start in range(0, users, 10_000):
            chunk = uids[start : start + 10_000]
            c.execute(
                insert(User),
                [
                    {
                        "id": u,
                        "org_id": org_id,
                        "user_name": f"user{start + i}@example.com",
                        "user_name_norm": f"user{start + i}@example.com",
                        "external_id": None,
                        "display_name": None,
                        "active": True,
                        "attrs": {},
                        "version": 1,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i, u in enumerate(chunk)
                ],
            )
            rows = []
            for u in chunk:
                gs = set(rnd.choices(templates, weights)[0])
                if rnd.random() < 0.2:
                    gs.add(rnd.choice(gids))
                rows += [
                    {"group_id": g, "user_id": u, "org_id": org_id, "created_at": now} for g in gs
                ]
            c.execute(insert(GroupMember), rows)
    return org_id


# --- sections ------------------------------------------------------------------------


def bench_rebuild(db: Database, cache: redis.Redis, org_id: str, users: int) -> None:
    section(f"full rebuild: {users} users")
    cache.flushdb()
    base_mem = int(cache.info("memory")["used_memory"])
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    writer = CacheWriter(cache, org_id)
    report = rebuild(db, writer, org_id)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stored = int(cache.hlen(writer.keys.sets(report.gen)))
    mem = int(cache.info("memory")["used_memory"]) - base_mem
    print(
        f"time {report.seconds:.2f} s ({users / report.seconds:,.0f} users/s), "
        f"{report.sets} distinct group-set profiles (profile hash holds {stored}), "
        f"{report.chunks} chunks"
    )
    print(
        f"peak RSS of the rebuilding process {rss1 / 1024:.0f} MiB "
        f"(+{(rss1 - rss0) / 1024:.0f} MiB during the rebuild)"
    )
    print(f"Redis memory {mem / 1e6:.1f} MB = {mem / users:.0f} bytes per user (target <= 1024)")


def timed_loop(fn: Callable[[int], Any], seconds: float) -> tuple[list[float], int]:
    lat: list[float] = []
    n = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        fn(n)
        lat.append(time.perf_counter() - t)
        n += 1
    return lat, n


def bench_client(cache: redis.Redis, org_id: str, user_ids: list[str], seconds: float) -> None:
    section("Python check client vs raw redis-py round trips (same Redis, same run)")
    client = CheckClient(cache, org_id)
    rnd = random.Random(1)
    sample = [rnd.choice(user_ids) for _ in range(5000)]
    wss = [f"ws{rnd.randrange(20)}" for _ in range(5000)]
    cache.set("bench:raw", "x")
    cache.sadd("bench:set", *range(100))
    runs = {
        "raw GET": lambda i: cache.get("bench:raw"),
        "raw SISMEMBER": lambda i: cache.sismember("bench:set", i % 200),
        "check()": lambda i: client.check(sample[i % 5000], wss[i % 5000], "create_sources"),
    }
    lats: dict[str, list[float]] = {k: [] for k in runs}
    for fn in runs.values():
        fn(0)
    rounds = 10  # interleaved slices: load from other processes hits every method alike
    for _ in range(rounds):
        for name, fn in runs.items():
            lat, _n = timed_loop(fn, seconds / rounds)
            lats[name] += lat
    results = {}
    for name, lat in lats.items():
        results[name] = len(lat) / sum(lat)
        print(f"{name:14s} p50 {ms(pct(lat, 50))}  p99 {ms(pct(lat, 99))}  {results[name]:,.0f}/s")
    ref = max(results["raw GET"], results["raw SISMEMBER"])
    print(f"check() throughput = {results['check()'] / ref:.0%} of raw (target >= 80%)")
    queries = [Check(sample[i], wss[i], "create_sources") for i in range(100)]
    before = client.round_trips
    t = time.perf_counter()
    client.batch(queries)
    dt = time.perf_counter() - t
    print(f"batch of 100 checks: {client.round_trips - before} round trip, {ms(dt)}")
    lat, n = timed_loop(lambda i: client.batch(queries), seconds / 2)
    print(f"batch(100) p50 {ms(pct(lat, 50))}: {100 * n / sum(lat):,.0f} checks/s")


BENCH_CHECK_TOKEN = "bench-service-token"


def bench_http(db_url: str, org_id: str, user_ids: list[str], seconds: float) -> None:
    section("HTTP check API, one uvicorn process")
    from tests.support.live_server import free_port

    port = free_port()
    env = dict(
        os.environ,
        DATABASE_URL=db_url,
        REDIS_URL=BROKER_URL,
        CACHE_REDIS_URL=CACHE_URL,
        PYTHONPATH=str(ROOT),
        IDSYNC_LOG_LEVEL="WARNING",
        IDSYNC_CHECK_API_TOKEN=BENCH_CHECK_TOKEN,
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "idsync.asgi:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(6) as pool:
            ref = pool.starmap(_http_healthz, [(base, seconds)] * 6)
        print(f"reference GET /healthz on the same server: {sum(ref) / seconds:,.0f} req/s")
        for batch in (False, True):
            with mp.get_context("spawn").Pool(6) as pool:
                counts = pool.starmap(
                    _http_client,
                    [(base, org_id, user_ids[:2000], seconds, batch, k) for k in range(6)],
                )
            kind = "batch(100) requests" if batch else "single-check requests"
            print(f"{kind}: {sum(counts) / seconds:,.0f} checks/s (6 client processes)")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)


def _http_healthz(base: str, seconds: float) -> int:
    n = 0
    stop = time.perf_counter() + seconds
    with httpx.Client(base_url=base) as c:
        while time.perf_counter() < stop:
            c.get("/healthz").raise_for_status()
            n += 1
    return n


def _http_client(
    base: str, org_id: str, user_ids: list[str], seconds: float, batch: bool, k: int
) -> int:
    body = {
        "org": org_id,
        "checks": [
            {
                "type": "check",
                "user": user_ids[i],
                "workspace": f"ws{i % 20}",
                "grant": "create_sources",
            }
            for i in range(100)
        ],
    }
    n = 0
    stop = time.perf_counter() + seconds
    headers = {"Authorization": f"Bearer {BENCH_CHECK_TOKEN}"}
    with httpx.Client(base_url=base, headers=headers) as c:
        while time.perf_counter() < stop:
            if batch:
                c.post("/api/v1/check/batch", json=body).raise_for_status()
                n += 100
            else:
                c.post(
                    "/api/v1/check",
                    json={
                        "org": org_id,
                        "user": user_ids[(k * 997 + n) % len(user_ids)],
                        "workspace": f"ws{n % 20}",
                        "grant": "create_sources",
                    },
                ).raise_for_status()
                n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--groups", type=int, default=2_000)
    ap.add_argument("--workspaces", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--trials-10k", type=int, default=200)
    ap.add_argument("--skip-http", action="store_true")
    ap.add_argument("--skip-freshness", action="store_true")
    ap.add_argument("--freshness-only", action="store_true")
    args = ap.parse_args()
    db_url, drop = create_db()
    try:
        db = Database(db_url)
        metadata.create_all(db.engine)
        t = time.perf_counter()
        org_id = populate(db, args.users, args.groups, args.workspaces)
        print(
            f"populated {args.users} users / {args.groups} groups / {args.workspaces} "
            f"workspaces in {time.perf_counter() - t:.1f} s"
        )
        cache = redis.Redis.from_url(CACHE_URL)
        redis.Redis.from_url(BROKER_URL).flushdb()
        if args.freshness_only:
            from bench.bench_freshness import run_freshness

            run_freshness(db, db_url, BROKER_URL, CACHE_URL, args.trials, args.trials_10k)
            return
        bench_rebuild(db, cache, org_id, args.users)
        with db.read() as s:
            user_ids = [str(u) for u in s.scalars(text("SELECT id FROM scim_users LIMIT 20000"))]
        bench_client(cache, org_id, user_ids, args.seconds)
        if not args.skip_http:
            bench_http(db_url, org_id, user_ids, args.seconds)
        if not args.skip_freshness:
            from bench.bench_freshness import run_freshness

            run_freshness(db, db_url, BROKER_URL, CACHE_URL, args.trials, args.trials_10k)
        db.dispose()
    finally:
        drop()


if __name__ == "__main__":
    main()
