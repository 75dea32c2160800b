"""Tracing off, before vs after: SCIM creates and /healthz from two source trees.

    git archive <before> | tar -x -C /tmp/before; git archive <after> | tar -x -C /tmp/after
    flock /work/bench.lock python bench/bench_tracing_off.py /tmp/before /tmp/after [N] [S]

Two `uvicorn idsync.asgi:app` servers (one process each, INFO logs off, metrics and the
request log on), one per tree, on one throw-away PostgreSQL database (created, migrated
and dropped here; $IDSYNC_BENCH_PG_URL) and one Redis database ($IDSYNC_BENCH_REDIS_URL,
default db 4, FLUSHed before and after), no OTEL_* variable. `wrk -t2 -c8` alternates
between them in rounds (A B, then B A, ...): creates with a unique userName each, then
/healthz. Prints each round's rate, p50, p99 and max, and the after/before ratio of
the total rate. docs/operations.md, Tracing (cost with tracing off).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
import uuid

import httpx
import redis
from bench_scim import WRK_CREATE_SCRIPT, free_port
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from models.db.database import Database
from models.db.migrate import upgrade
from models.db.session import normalize_url
from models.db.tokens import create_scim_token, get_or_create_org

PG = os.environ.get("IDSYNC_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("IDSYNC_BENCH_REDIS_URL", "redis://127.0.0.1:6379/4")


def ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", value)
    assert m, value
    n = float(m.group(1))
    return n / 1000 if m.group(2) == "us" else n * 1000 if m.group(2) == "s" else n


def wrk(url: str, seconds: int, script: str | None, tag: str, token: str) -> dict[str, float]:
    cmd = ["wrk", "-t2", "-c8", f"-d{seconds}s", "--latency"]
    if script:
        cmd += ["-s", script, url, "--", tag]
    else:
        cmd += [url]
    out = subprocess.run(
        cmd, env={**os.environ, "BENCH_TOKEN": token}, capture_output=True, text=True, check=True
    ).stdout
    assert "Non-2xx" not in out, out
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", out)
    dist = dict(re.findall(r"\s(50|99)%\s+(\S+)", out))
    return {"rate": rate, "p50": ms(dist["50"]), "p99": ms(dist["99"]), "max": ms(lat.group(3))}


def main() -> None:
    trees = {"before": sys.argv[1], "after": sys.argv[2]}
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 6
    seconds = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    admin = create_engine(normalize_url(PG), isolation_level="AUTOCOMMIT")
    name = f"idsync_bench_otel_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(normalize_url(PG)).set(database=name).render_as_string(hide_password=False)
    procs = []
    try:
        upgrade(url)
        db = Database(url)
        with db.write() as s:
            org = get_or_create_org(s, "bench")
            token = create_scim_token(s, org, "bench")
        db.dispose()
        redis.Redis.from_url(REDIS).flushdb()
        ports = {}
        for label, tree in trees.items():
            port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
            env.update(
                DATABASE_URL=url, REDIS_URL=REDIS, PYTHONPATH=tree, IDSYNC_LOG_LEVEL="WARNING"
            )
            where = subprocess.run(
                [sys.executable, "-c", "import idsync, worker; print(idsync.__file__)"],
                cwd=tree,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            assert where.startswith(tree), where
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "idsync.asgi:app",
                        "--port",
                        str(port),
                        "--no-access-log",
                        "--log-level",
                        "warning",
                    ],
                    cwd=tree,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            ports[label] = port
        for port in ports.values():
            for _ in range(200):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write(WRK_CREATE_SCRIPT)
        results: dict[tuple[str, str], list[dict[str, float]]] = {}
        for r in range(rounds):
            order = list(trees) if r % 2 == 0 else list(reversed(trees))
            for label in order:
                base = f"http://127.0.0.1:{ports[label]}"
                results.setdefault((label, "create"), []).append(
                    wrk(f"{base}/scim/v2/Users", seconds, script.name, f"{label}{r}", token)
                )
                results.setdefault((label, "healthz"), []).append(
                    wrk(f"{base}/healthz", seconds, None, "", token)
                )
        for what in ("create", "healthz"):
            print(f"\n{what}: per-round values, then min..max")
            for label in trees:
                rows = results[(label, what)]
                for key in ("rate", "p50", "p99", "max"):
                    vals = [row[key] for row in rows]
                    print(
                        f"  {label:6} {key:4} {min(vals):9.2f} .. {max(vals):9.2f}   "
                        + " ".join(f"{v:.2f}" for v in vals)
                    )
            b = sum(x["rate"] for x in results[("before", what)])
            a = sum(x["rate"] for x in results[("after", what)])
            print(f"  after/before total rate: {a / b:.3f}")
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        redis.Redis.from_url(REDIS).flushdb()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
