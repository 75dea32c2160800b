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
redis://127.0.0.1:6379; databases 10 = broker and 11 = cache are flushed, or
IDSYNC_BENCH_BROKER_URL / IDSYNC_BENCH_CACHE_URL).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import subprocess
import sys
import threading
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
from models.cache.layout import NO_ACCESS  # noqa: E402
from models.cache.local_answers import LocalAnswers  # noqa: E402
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
BROKER_URL = os.environ.get("IDSYNC_BENCH_BROKER_URL", f"{REDIS}/10")
CACHE_URL = os.environ.get("IDSYNC_BENCH_CACHE_URL", f"{REDIS}/11")
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


def bench_client(
    cache: redis.Redis, org_id: str, user_ids: list[str], seconds: float, trials: int
) -> None:
    section("Python check client vs raw redis-py round trips (same Redis, same run)")
    client = CheckClient(cache, org_id)
    local = LocalAnswers.watching(CACHE_URL)
    kept = CheckClient(cache, org_id, local=local)
    churned = CheckClient(cache, org_id, local=local)
    rnd = random.Random(1)
    sample = [rnd.choice(user_ids) for _ in range(5000)]
    wss = [f"ws{rnd.randrange(20)}" for _ in range(5000)]
    cache.set("bench:raw", "x")
    cache.sadd("bench:set", *range(100))
    writer = CacheWriter(cache, org_id)
    runs: dict[str, Callable[[int], Any]] = {
        "raw GET": lambda i: cache.get("bench:raw"),
        "raw SISMEMBER": lambda i: cache.sismember("bench:set", str(i % 200)),
        "check(), asking Redis": lambda i: client.check(
            sample[i % 5000], wss[i % 5000], "create_sources"
        ),
        "check(), kept": lambda i: kept.check(sample[i % 5000], wss[i % 5000], "create_sources"),
        "check(), kept, writes": lambda i: churned.check(
            sample[i % 5000], wss[i % 5000], "create_sources"
        ),
    }
    lats: dict[str, list[float]] = {k: [] for k in runs}
    while local.tracking is not None and not local.tracking.usable():
        time.sleep(0.01)
    # A service's steady state: the client has met these users (their group sets and
    # blobs are kept). The first pass, each user met for the first time, is reported too.
    t = time.perf_counter()
    for i in range(5000):
        client.check(sample[i], wss[i], "create_sources")
    cold = time.perf_counter() - t
    before = client.round_trips
    rounds = 10  # interleaved slices: load from other processes hits every method alike
    churn_hits = churn_checks = 0
    for _ in range(rounds):
        for name, fn in runs.items():
            if name == "check(), kept":  # refill what the last row's writes dropped
                for i in range(5000):
                    kept.check(sample[i], wss[i], "create_sources")
            stop = churn(writer) if name == "check(), kept, writes" else None
            hits = local.hits
            lat, _n = timed_loop(fn, seconds / rounds)
            if stop is not None:
                stop()
                churn_hits += local.hits - hits
                churn_checks += len(lat)
            lats[name] += lat
    results = {}
    for name, lat in lats.items():
        results[name] = len(lat) / sum(lat)
        print(
            f"{name:22s} p50 {ms(pct(lat, 50))}  p99 {ms(pct(lat, 99))}  max {ms(max(lat))}  "
            f"{results[name]:,.0f}/s"
        )
    ref = max(results["raw GET"], results["raw SISMEMBER"])
    for name in ("check(), asking Redis", "check(), kept", "check(), kept, writes"):
        print(f"{name} throughput = {results[name] / ref:.0%} of raw (target >= 80%)")
    checks = len(lats["check(), asking Redis"])
    print(
        f"check(), asking Redis: {(client.round_trips - before) / checks:.3f} round trips per "
        f"check once warm; the first pass over 5,000 users (first sight of each) ran at "
        f"{5000 / cold:,.0f}/s = {5000 / cold / ref:.0%} of raw"
    )
    print(
        f"check(), kept, writes: a cache write to the organization every "
        f"{CHURN_EVERY_S * 1000:.0f} ms (each drops its kept answers); "
        f"{churn_hits / max(churn_checks, 1):.1%} of checks answered from memory"
    )
    queries = [Check(sample[i], wss[i], "create_sources") for i in range(100)]
    before = client.round_trips
    t = time.perf_counter()
    client.batch(queries)
    dt = time.perf_counter() - t
    print(f"batch of 100 checks: {client.round_trips - before} round trip, {ms(dt)}")
    lat, n = timed_loop(lambda i: client.batch(queries), seconds / 2)
    print(f"batch(100) p50 {ms(pct(lat, 50))}: {100 * n / sum(lat):,.0f} checks/s")
    revoked = client_revocation(cache, org_id, user_ids, local, trials)
    section(
        f"revocation with answers kept in the Python client's memory: a tombstone written "
        f"(as a deactivation does before its COMMIT) -> the client refuses; {trials} trials"
    )
    print(f"from the write's return to the client refusing: {spread(revoked)}")
    local.close()


CHURN_EVERY_S = 0.1


def churn(writer: CacheWriter) -> Callable[[], None]:
    """Start raising the organization's cache watermark every ``CHURN_EVERY_S`` in a
    thread, as the drain after each SCIM push does (every write to the organization's
    keys drops the answers kept for it); returns the function that stops it."""
    done = threading.Event()

    def run() -> None:
        while not done.wait(CHURN_EVERY_S):
            writer.raise_meta("wm", int(writer.meta().wm) + 1)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def stop() -> None:
        done.set()
        thread.join()

    return stop


def client_revocation(
    cache: redis.Redis, org_id: str, user_ids: list[str], local: LocalAnswers, trials: int
) -> list[float]:
    """Per trial: a user's check kept by a ``CheckClient`` with local answers, then the
    tombstone written; seconds from the write's return to the client refusing."""
    client = CheckClient(cache, org_id, local=local)
    writer = CacheWriter(cache, org_id)
    rev = int(writer.meta().wm) + 2_000_000
    out: list[float] = []
    for i in range(trials):
        user = user_ids[-(trials + i + 1)]
        client.check(user, "ws0", "create_sources")
        hits = local.hits
        client.check(user, "ws0", "create_sources")
        assert local.hits == hits + 1, "not kept"
        rev += 1
        writer.put(rev, {user: NO_ACCESS})
        returned = time.perf_counter()
        while client.check(user, "ws0", "create_sources").reason != "user_inactive_or_deleted":
            pass
        out.append(time.perf_counter() - returned)
    return out


def spread(lat: list[float]) -> str:
    return f"p50 {ms(pct(lat, 50))}  p99 {ms(pct(lat, 99))}  max {ms(max(lat))}"


BENCH_CHECK_TOKEN = "bench-service-token"
WRK_CONNECTIONS = 16
TRIVIAL_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"status":"ok"}'})
"""


def _wrk_script(path: Path, bodies: list[str], token: str | None) -> None:
    """A wrk script cycling through POST ``bodies`` (JSON) with a bearer token."""
    quoted = ",\n".join("[==[" + b + "]==]" for b in bodies)
    auth = "" if token is None else f'wrk.headers["Authorization"] = "Bearer {token}"\n'
    path.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"{auth}"
        f"local bodies = {{\n{quoted}\n}}\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i + 1\n"
        "  return wrk.format(nil, nil, nil, bodies[(i % #bodies) + 1])\n"
        "end\n"
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("JSON {\\"rps\\": %f, \\"p50\\": %d, \\"p99\\": %d, '
        '\\"max\\": %d, \\"errors\\": %d, \\"non2xx\\": %d}\\n",\n'
        "    summary.requests / (summary.duration / 1e6), latency:percentile(50),\n"
        "    latency:percentile(99), latency.max,\n"
        "    summary.errors.connect + summary.errors.read + summary.errors.write +\n"
        "    summary.errors.timeout, summary.errors.status))\n"
        "end\n"
    )


def _wrk(url: str, seconds: float, script: Path | None = None) -> dict[str, float]:
    """wrk (1 thread, WRK_CONNECTIONS connections) -> rps and latency p50/p99/max (µs)."""
    import json

    cmd = ["wrk", "-t1", f"-c{WRK_CONNECTIONS}", f"-d{max(1, round(seconds))}s"]
    if script is None:
        # a request() function like the POST scripts': wrk then spends the same per
        # request on every endpoint (Lua call + wrk.format), and the ratios compare servers
        script = Path(f"/tmp/idsync-bench-wrk-get-{os.getpid()}.lua")
        script.write_text(
            'request = function()\n  return wrk.format("GET")\nend\n'
            "done = function(summary, latency, requests)\n"
            '  io.write(string.format("JSON {\\"rps\\": %f, \\"p50\\": %d, \\"p99\\": %d, '
            '\\"max\\": %d, \\"errors\\": %d, \\"non2xx\\": %d}\\n",\n'
            "    summary.requests / (summary.duration / 1e6), latency:percentile(50),\n"
            "    latency:percentile(99), latency.max,\n"
            "    summary.errors.connect + summary.errors.read + summary.errors.write +\n"
            "    summary.errors.timeout, summary.errors.status))\n"
            "end\n"
        )
    out = subprocess.run(
        [*cmd, "-s", str(script), url], capture_output=True, text=True, check=True
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("JSON "))
    result: dict[str, float] = json.loads(line[5:])
    if result["errors"] or result["non2xx"]:
        raise RuntimeError(f"wrk saw errors against {url}: {out}")
    return result


def _serve(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    from tests.support.live_server import free_port

    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            *args,
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
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{base}/healthz", timeout=1)
            return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def _span(runs: list[dict[str, float]], key: str, scale: float = 1.0) -> str:
    values = [r[key] / scale for r in runs]
    return f"{min(values):,.2f}..{max(values):,.2f}"


def _line(name: str, runs: list[dict[str, float]], ref: list[dict[str, float]] | None) -> None:
    rps = [r["rps"] for r in runs]
    text = (
        f"{name:38s} {min(rps):8,.0f}..{max(rps):8,.0f} req/s  "
        f"p50 {_span(runs, 'p50', 1000)} ms  p99 {_span(runs, 'p99', 1000)} ms  "
        f"max {max(r['max'] for r in runs) / 1000:.1f} ms"
    )
    if ref is not None:
        ratios = [r["rps"] / h["rps"] for r, h in zip(runs, ref, strict=True)]
        text += f"  = {min(ratios):.2f}..{max(ratios):.2f} x /healthz"
    print(text)


def bench_http(
    db: Database,
    db_url: str,
    org_id: str,
    user_ids: list[str],
    seconds: float,
    rounds: int,
    trials: int,
) -> None:
    section(f"HTTP check API, one uvicorn process, wrk -t1 -c{WRK_CONNECTIONS}")
    from models.db.admin_keys import create_admin_key

    with db.write() as session:
        admin_key = create_admin_key(session, session.get_one(Organization, org_id))
    env = dict(
        os.environ,
        DATABASE_URL=db_url,
        REDIS_URL=BROKER_URL,
        CACHE_REDIS_URL=CACHE_URL,
        PYTHONPATH=str(ROOT),
        IDSYNC_LOG_LEVEL="WARNING",
        IDSYNC_CHECK_API_TOKEN=BENCH_CHECK_TOKEN,
    )
    trivial = Path(f"/tmp/idsync_bench_trivial_{os.getpid()}.py")
    trivial.write_text(TRIVIAL_APP)
    tmp = Path(f"/tmp/idsync-bench-{os.getpid()}")
    tmp.mkdir(exist_ok=True)
    rnd = random.Random(3)
    pairs = [(rnd.choice(user_ids), f"ws{rnd.randrange(20)}") for _ in range(2000)]
    single = [
        json.dumps({"org": org_id, "user": u, "workspace": w, "grant": "create_sources"})
        for u, w in pairs
    ]
    implied = [json.dumps({"user": u, "workspace": w, "grant": "create_sources"}) for u, w in pairs]
    batches = [
        json.dumps(
            {
                "org": org_id,
                "checks": [
                    {"type": "check", "user": u, "workspace": w, "grant": "create_sources"}
                    for u, w in pairs[k : k + 100]
                ],
            }
        )
        for k in range(0, len(pairs), 100)
    ]
    scripts = {
        "service": tmp / "service.lua",
        "admin": tmp / "admin.lua",
        "batch": tmp / "batch.lua",
    }
    _wrk_script(scripts["service"], single, BENCH_CHECK_TOKEN)
    _wrk_script(scripts["admin"], implied, admin_key)
    _wrk_script(scripts["batch"], batches, BENCH_CHECK_TOKEN)
    server, base = _serve(["idsync.asgi:app"], env)
    second, second_base = _serve(["idsync.asgi:app"], env)  # revocation: every process
    gen, gen_base = _serve(
        [f"{trivial.stem}:app"], dict(env, PYTHONPATH=f"{ROOT}:{trivial.parent}")
    )
    results: dict[str, list[dict[str, float]]] = {
        k: [] for k in ("trivial", "trivial_post", "healthz", "service", "admin", "batch")
    }
    try:
        _wrk(f"{base}/api/v1/check", 1, scripts["service"])  # warm the processes up
        _wrk(f"{base}/api/v1/check", 1, scripts["admin"])
        for _ in range(rounds):  # interleaved: load from other processes hits each alike
            results["trivial"].append(_wrk(f"{gen_base}/", seconds))
            results["trivial_post"].append(_wrk(f"{gen_base}/", seconds, scripts["service"]))
            results["healthz"].append(_wrk(f"{base}/healthz", seconds))
            results["service"].append(_wrk(f"{base}/api/v1/check", seconds, scripts["service"]))
            results["admin"].append(_wrk(f"{base}/api/v1/check", seconds, scripts["admin"]))
            results["batch"].append(_wrk(f"{base}/api/v1/check/batch", seconds, scripts["batch"]))
        revocation, refused_first = bench_revocation(org_id, user_ids, [base, second_base], trials)
    finally:
        for proc in (server, second, gen):
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)
        trivial.unlink(missing_ok=True)
    print(f"{rounds} interleaved runs of {seconds:.0f} s each; ranges over the runs:")
    _line("generator ceiling (bare ASGI app), GET", results["trivial"], None)
    _line("generator ceiling, the check POSTs", results["trivial_post"], None)
    _line("GET /healthz (reference)", results["healthz"], None)
    _line("check, service token", results["service"], results["healthz"])
    _line("check, admin key (org implied)", results["admin"], results["healthz"])
    _line("batch of 100, service token", results["batch"], None)
    per = [100 * r["rps"] for r in results["batch"]]
    print(f"batch of 100: {min(per):,.0f}..{max(per):,.0f} checks/s")
    ref = results["healthz"]
    svc = [r["rps"] / h["rps"] for r, h in zip(results["service"], ref, strict=True)]
    adm = [r["rps"] / h["rps"] for r, h in zip(results["admin"], ref, strict=True)]
    print(
        f"check / healthz: service token {sorted(svc)[len(svc) // 2]:.2f}, admin key "
        f"{sorted(adm)[len(adm) // 2]:.2f} (medians; target >= 0.8); admin key / service "
        f"token {sorted(a / s for a, s in zip(adm, svc, strict=True))[len(adm) // 2]:.2f}"
    )
    ratios = sorted(
        a["rps"] / v["rps"] for a, v in zip(results["admin"], results["service"], strict=True)
    )
    print(f"admin key / service token per run: {ratios[0]:.2f}..{ratios[-1]:.2f}")
    section(
        f"revocation with answers kept in memory: a tombstone written (as a deactivation "
        f"does before its COMMIT) -> every one of 2 API processes refuses; {trials} trials"
    )
    for label, lat in revocation.items():
        print(f"{label:52s} p50 {ms(pct(lat, 50))}  p99 {ms(pct(lat, 99))}  max {ms(max(lat))}")
    print(
        f"the first check each process answered after the write returned was already a "
        f"refusal in {refused_first:.1%} of the trials"
    )


def bench_revocation(
    org_id: str, user_ids: list[str], bases: list[str], trials: int
) -> tuple[dict[str, list[float]], float]:
    """Per trial: a user's check answered (and kept) by every process, then the tombstone
    ``CacheWriter.put(rev, {user: "-"})`` — the write the commit guard makes before a
    deactivation's COMMIT — then every process polled (HTTP, keep-alive) until it refuses
    (``user_inactive_or_deleted``). Times from the start and from the return of the write
    to the last process refusing; and how often the first check each process answered
    after the write returned already refused."""
    cache = redis.Redis.from_url(CACHE_URL)
    writer = CacheWriter(cache, org_id)
    clients = [httpx.Client(base_url=b, timeout=5) for b in bases]
    auth = {"Authorization": f"Bearer {BENCH_CHECK_TOKEN}"}
    rev = int(writer.meta().wm) + 1_000_000
    out: dict[str, list[float]] = {
        "from the write's start to every process refusing": [],
        "from the write's return to every process refusing": [],
    }
    refused_first = 0
    try:
        for i in range(trials):
            user = user_ids[-(i + 1)]  # users the HTTP runs did not ask about
            body = {"org": org_id, "user": user, "workspace": "ws0", "grant": "create_sources"}

            def reason(c: httpx.Client, body: dict[str, str] = body) -> str:
                answer = c.post("/api/v1/check", json=body, headers=auth)
                answer.raise_for_status()
                return str(answer.json()["reason"])

            for c in clients:  # the first answer fills, the next ones are kept
                for _ in range(3):
                    reason(c)
                time.sleep(0.01)
                reason(c)
            rev += 1
            started = time.perf_counter()
            writer.put(rev, {user: NO_ACCESS})
            returned = time.perf_counter()
            pending = set(range(len(clients)))
            firsts: dict[int, bool] = {}
            at = returned
            while pending:
                for k in sorted(pending):
                    refused = reason(clients[k]) == "user_inactive_or_deleted"
                    firsts.setdefault(k, refused)
                    if refused:
                        pending.discard(k)
                        at = time.perf_counter()
            out["from the write's start to every process refusing"].append(at - started)
            out["from the write's return to every process refusing"].append(at - returned)
            refused_first += all(firsts.values())
    finally:
        for c in clients:
            c.close()
    return out, refused_first / trials


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--groups", type=int, default=2_000)
    ap.add_argument("--workspaces", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--trials-10k", type=int, default=200)
    ap.add_argument("--http-rounds", type=int, default=3)
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
        bench_client(cache, org_id, user_ids, args.seconds, args.trials)
        if not args.skip_http:
            bench_http(db, db_url, org_id, user_ids, args.seconds, args.http_rounds, args.trials)
        if not args.skip_freshness:
            from bench.bench_freshness import run_freshness

            run_freshness(db, db_url, BROKER_URL, CACHE_URL, args.trials, args.trials_10k)
        db.dispose()
    finally:
        drop()


if __name__ == "__main__":
    main()
