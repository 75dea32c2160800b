"""Freshness with a real Celery worker: time from a committed write's return (what the
SCIM response waits for) until the check client's answer reflects it.

Run through ``bench/bench_cache.py`` (or ``--freshness-only`` there)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import redis
from sqlalchemy import insert

from models.cache.client import Check, CheckClient
from models.cache.writer import CacheWriter
from models.db.base import utcnow
from models.db.config_store import RuleSpec, create_rule
from models.db.database import Database
from models.db.tables import GroupMember, User
from models.settings import Settings
from tests.integration.cache.world import World
from worker.hooks import install_change_hook
from worker.rebuild import rebuild

ROOT = Path(__file__).resolve().parents[1]


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def _report(name: str, xs: list[float]) -> None:
    print(
        f"{name:38s} n={len(xs):4d}  p50 {_pct(xs, 50) * 1000:7.1f} ms  "
        f"p99 {_pct(xs, 99) * 1000:7.1f} ms  max {max(xs) * 1000:7.1f} ms"
    )


def _until(pred, timeout: float = 30.0) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    while not pred():
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError("not reflected")
    return time.perf_counter() - t0


def run_freshness(
    db: Database, db_url: str, broker_url: str, cache_url: str, trials: int, trials_10k: int
) -> None:
    print("\n== freshness with a real worker (write returned -> check reflects it)")
    cache = redis.Redis.from_url(cache_url)
    settings = Settings(REDIS_URL=broker_url, CACHE_REDIS_URL=cache_url)  # type: ignore[call-arg]
    w = World.create(db)
    w.workspace("ws1")
    names = [f"f{i}" for i in range(10)]
    for n in names:
        w.user(n)
    w.group("eng", names)
    w.bind("eng", "ws1", "editor")
    big = w.group("big", [])
    now = utcnow()
    big_users = [str(uuid.uuid4()) for _ in range(10_000)]
    with db.engine.begin() as c:
        c.execute(
            insert(User),
            [
                {
                    "id": u,
                    "org_id": w.org_id,
                    "user_name": f"big{i}",
                    "user_name_norm": f"big{i}",
                    "active": True,
                    "attrs": {},
                    "version": 1,
                    "created_at": now,
                    "updated_at": now,
                }
                for i, u in enumerate(big_users)
            ],
        )
        c.execute(
            insert(GroupMember),
            [
                {"group_id": big, "user_id": u, "org_id": w.org_id, "created_at": now}
                for u in big_users
            ],
        )
    w.bind("big", "ws1", "viewer")
    with db.write() as s:  # a group renamed into / out of this pattern gains / loses admin
        create_rule(
            s,
            w.admin,
            RuleSpec(
                id="ds",
                attribute="displayName",
                match="regex",
                pattern=r"^ds-(?P<workspace>[a-z0-9-]+)-(?P<role>admin|editor|viewer)$",
            ),
        )
    w.group("renamed", names[:3])
    rebuild(db, CacheWriter(cache, w.org_id), w.org_id)
    install_change_hook(db, settings)
    env = dict(
        os.environ,
        DATABASE_URL=db_url,
        REDIS_URL=broker_url,
        CACHE_REDIS_URL=cache_url,
        PYTHONPATH=str(ROOT),
        IDSYNC_LOG_LEVEL="WARNING",
    )
    log = open("/tmp/idsync-bench-worker.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker.app",
            "worker",
            "-c",
            "4",
            "-Q",
            "idsync.revoke,idsync.recompute,idsync.ingest,idsync.reconcile",
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        checks = CheckClient(cache, w.org_id)
        time.sleep(3)  # worker start-up
        removal, deact = [], []
        for i in range(trials):
            name = names[i % len(names)]
            uid = w.users[name]
            w.remove_member("eng", name)
            removal.append(
                _until(lambda uid=uid: not checks.check(uid, "ws1", "create_sources").allowed)
            )
            w.add_member("eng", name)
            _until(lambda uid=uid: checks.check(uid, "ws1", "create_sources").allowed)
        _report("removal from a group", removal)
        for i in range(trials):
            name = names[i % len(names)]
            uid = w.users[name]
            w.set_active(name, False)
            deact.append(_until(lambda uid=uid: not checks.check(uid, "ws1", "read").allowed))
            w.set_active(name, True)
            _until(lambda uid=uid: checks.check(uid, "ws1", "read").allowed)
        _report("deactivation", deact)
        renamed, unrenamed = [], []
        first = w.users[names[0]]
        for _ in range(trials):
            w.rename("renamed", "ds-ws1-admin")  # mapping rule binds it: admin
            renamed.append(_until(lambda: checks.check(first, "ws1", "manage_workspace").allowed))
            w.rename("renamed", "renamed")
            unrenamed.append(
                _until(lambda: not checks.check(first, "ws1", "manage_workspace").allowed)
            )
        _report("group rename into a mapping rule", renamed)
        _report("group rename out of a mapping rule", unrenamed)
        queries = [Check(u, "ws1", "create_sources") for u in big_users]

        def all_are(allowed: bool) -> bool:
            for k in range(0, len(queries), 1000):
                if any(
                    r.status != ("allow" if allowed else "deny")
                    for r in checks.batch(queries[k : k + 1000])
                ):
                    return False
            return True

        up, down = [], []
        for _ in range(trials_10k):
            bid = w.bind("big", "ws1", "editor")
            up.append(_until(lambda: all_are(True)))
            w.unbind(bid)
            down.append(_until(lambda: all_are(False)))
        _report("role upgrade, 10k-member group (all)", up)
        _report("role downgrade, 10k-member group (all)", down)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
