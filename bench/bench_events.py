"""Webhook delivery delay, one command: from a SCIM write's commit to its event's arrival at
a receiver on localhost, at a steady write rate, with a real Celery worker.

    python bench/bench_events.py                     # 50 writes/s for 10 s, 3 runs
    python bench/bench_events.py --rate 100 --seconds 5 --runs 2

Each run: a fresh organization with one subscription (every event type); user creates
through the SCIM store at ``--rate`` per second, each committed with the change hook and
the events hook installed (what the API process does); the receiver notes when each
``user.created`` event arrives (answering 200 at once). Reported: p50 / p99 / max of
arrival minus commit per run, and their range over the runs. Deliveries are in order, one
at a time per subscription, so the delay includes waiting behind earlier events.

Needs PostgreSQL (IDSYNC_BENCH_PG_URL; a throw-away database is created) and Redis
(IDSYNC_BENCH_REDIS, default redis://127.0.0.1:6379; database 10 = broker and 11 = cache
are flushed, or IDSYNC_BENCH_BROKER_URL / IDSYNC_BENCH_CACHE_URL). Run it alone on the
machine (``flock -x /work/quiet.lock``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from bench_cache import BROKER_URL, CACHE_URL, create_db, pct  # noqa: E402

from models.db.database import Database  # noqa: E402
from models.db.event_log import last_seq  # noqa: E402
from models.db.migrate import upgrade  # noqa: E402
from models.db.tokens import get_or_create_org  # noqa: E402
from models.db.webhooks import NewSubscription, create_subscription  # noqa: E402
from models.secret_box import SecretBox, generate_key  # noqa: E402
from models.settings import Settings  # noqa: E402
from scim.context import ScimContext  # noqa: E402
from scim.users import create_user  # noqa: E402
from worker.broker import ALL_QUEUES  # noqa: E402
from worker.event_wakes import install_events_hook  # noqa: E402
from worker.hooks import install_change_hook  # noqa: E402

SECRET = "bench-secret-0123456789"


class Arrivals:
    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.lock = threading.Lock()

    def serve(self) -> tuple[ThreadingHTTPServer, str]:
        arrivals = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                now = time.time()
                event = json.loads(body)
                if event["type"] == "user.created":
                    with arrivals.lock:
                        arrivals.at.setdefault(event["data"]["user"]["id"], now)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"http://127.0.0.1:{server.server_address[1]}/hook"


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "celery", "-A", "worker.app", "worker", "-c", "2"),
            *("-Q", ",".join(ALL_QUEUES), "--loglevel", "INFO"),
            *("-n", f"bench-{os.getpid()}@%h", "--without-gossip", "--without-mingle"),
            "--without-heartbeat",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while b"ready" not in log.read_bytes():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit(f"the worker did not start: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)
    return proc


def one_run(
    db: Database, box: SecretBox, url: str, arrivals: Arrivals, args: Any, n: int
) -> dict[str, float]:
    with db.write() as s:
        org = get_or_create_org(s, f"bench-events-{n}-{time.time_ns()}")
        org_id = org.id
        create_subscription(
            s, org_id, NewSubscription(url, [], SECRET), box, start_at=last_seq(s, org_id)
        )
    ctx = ScimContext(org_id=org_id, actor="bench", base_url="http://bench/scim/v2")
    committed: dict[str, float] = {}
    total = int(args.rate * args.seconds)
    start = time.monotonic()
    for i in range(total):
        due = start + i / args.rate
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        body = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": f"u{i}@bench.example",
        }
        with db.write() as s:
            user = create_user(s, ctx, body)
        committed[user.id] = time.time()  # after COMMIT and the after-commit hooks
    achieved = total / max(time.monotonic() - start, 1e-9)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        with arrivals.lock:
            if all(u in arrivals.at for u in committed):
                break
        time.sleep(0.05)
    with arrivals.lock:
        delays = [arrivals.at[u] - t for u, t in committed.items() if u in arrivals.at]
    missing = total - len(delays)
    if not delays:
        nan = float("nan")
        return {"p50": nan, "p99": nan, "max": nan, "missing": missing, "rate": achieved}
    return {
        "p50": pct(delays, 50),
        "p99": pct(delays, 99),
        "max": max(delays),
        "missing": missing,
        "rate": achieved,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=50.0, help="user creates per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=60.0, help="wait for the last event")
    args = parser.parse_args()

    for url in (BROKER_URL, CACHE_URL):
        redis.Redis.from_url(url).flushdb()
    db_url, drop = create_db()
    key = generate_key()
    worker: subprocess.Popen[bytes] | None = None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            upgrade(db_url)
            db = Database(db_url, pool_size=4)
            settings = Settings(REDIS_URL=BROKER_URL, CACHE_REDIS_URL=CACHE_URL)
            install_change_hook(db, settings)
            install_events_hook(db, settings)
            env = {
                **os.environ,
                "DATABASE_URL": db_url,
                "REDIS_URL": BROKER_URL,
                "CACHE_REDIS_URL": CACHE_URL,
                "IDSYNC_SECRET_KEY": key,
                "IDSYNC_OUTBOUND_ALLOW_PRIVATE": "true",  # the receiver is on localhost
                "PYTHONPATH": str(ROOT),
                "IDSYNC_LOG_LEVEL": "WARNING",
            }
            worker = start_worker(env, Path(tmp) / "worker.log")
            arrivals = Arrivals()
            server, hook_url = arrivals.serve()
            box = SecretBox(key)
            print(
                f"commit -> webhook arrival, {args.rate:g} user creates/s for {args.seconds:g} s,"
            )
            print("one subscription, receiver on localhost answering 200 at once; worker -c 2")
            results = []
            for n in range(args.runs):
                r = one_run(db, box, hook_url, arrivals, args, n)
                results.append(r)
                print(
                    f"run {n + 1}: p50 {r['p50'] * 1000:.1f} ms  p99 {r['p99'] * 1000:.1f} ms  "
                    f"max {r['max'] * 1000:.1f} ms  missing {int(r['missing'])}  "
                    f"(writes at {r['rate']:.0f}/s)"
                )
            for k in ("p50", "p99", "max"):
                values = [r[k] * 1000 for r in results]
                print(f"{k}: {min(values):.1f}-{max(values):.1f} ms over {len(values)} runs")
            server.shutdown()
            db.dispose()
        finally:
            if worker is not None:
                os.killpg(worker.pid, signal.SIGTERM)
                try:
                    worker.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(worker.pid, signal.SIGKILL)
            drop()


if __name__ == "__main__":
    main()
