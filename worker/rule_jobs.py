"""Layer: worker. Full applications of the mapping rules as worker jobs (state in the cache Redis).

Every rule on every group costs rules x groups regular expressions: unbounded for a
request. So ``POST /api/v1/mapping-rules/apply`` (and the worker's reconcile) only
*request* one (``request``): a job id is stored in the organization's job hash and the
``idsync.rules.apply`` task is sent with it. The task (``run``) applies the rules chunk
by chunk (``models.db.rule_application.apply_to_next_groups``: each chunk its own short
transaction and, when it changed something, its own ``config.rules.applied`` change
row), keeps the cursor and the counts in the hash, and re-enqueues itself when its time
budget runs out, so no task comes near the worker's time limits.

Keys (``idsync:{org}:`` prefix, one slot per organization)::

    rules-apply              HASH  the current job: job, state (queued, running, done,
                                   failed), revision (the organization's at the request),
                                   actor, request_id, requested_at, started_at, updated_at,
                                   finished_at, after (cursor: last group id done),
                                   groups, chunks, created, removed, problems,
                                   evaluations, change_rows, seconds, error
    rules-apply:problems     LIST  the current job's problems (JSON, first MAX_PROBLEMS)
    rules-apply:last         HASH  the last job that finished (``done``): the same fields
    rules-apply:last:problems LIST its problems
    rules-apply:lease        STRING the running task's lease (one chain step at a time)

Idempotent: a redelivered or duplicated task resumes from the stored cursor (a chunk
applied twice writes nothing the second time); a task whose job is no longer the
current one stops. Every change to the hash is a script that first checks the job id,
so a superseded task never writes into its successor's counts.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import redis
from redis.cluster import RedisCluster

from models.access.mapping_rules import MappingProblem
from models.cache.layout import OrgKeys
from models.db.database import Database
from models.db.rule_application import RuleApplication, apply_to_next_groups
from models.db.tables import Organization

RUN_BUDGET_S: Final = 5.0
"""A task starts no new chunk after this long; it re-enqueues itself instead."""
LEASE_S: Final = 30
"""Longer than the task hard time limit (25 s): a lease outlives its holder only when
the holder was killed, and then for at most this long."""
BUSY_COUNTDOWN_S: Final = 2.0
QUEUED_COALESCE_S: Final = 60.0
"""A request finding a job queued for less than this returns it instead of another
(the job reads the state of its own time); older, its message may be lost."""
STALE_RUNNING_S: Final = 120.0
"""A running job not updated for this long is taken as dead (its chain was lost)."""
MAX_PROBLEMS: Final = 1_000
"""Problems kept per job (``problems`` counts them all)."""

COUNTS: Final = ("groups", "chunks", "created", "removed", "problems", "evaluations", "change_rows")

Client = redis.Redis | RedisCluster
"""The cache's client (one server or a cluster: every key here carries the org's tag)."""
Send = Callable[[str, str], None]
"""``send(org_id, job_id)`` enqueues the ``idsync.rules.apply`` task."""


@dataclass(frozen=True, slots=True)
class JobKeys:
    current: str
    problems: str
    last: str
    last_problems: str
    lease: str

    @classmethod
    def of(cls, org_id: str) -> JobKeys:
        base = f"{OrgKeys.of(org_id).base}:rules-apply"
        return cls(
            base, f"{base}:problems", f"{base}:last", f"{base}:last:problems", f"{base}:lease"
        )


# KEYS: current, problems. ARGV: job, now, revision, actor, request_id, restart_running,
# coalesce_s, stale_s. -> {job id, 1 if new}
_REQUEST = """
local state = redis.call('HGET', KEYS[1], 'state')
local job = redis.call('HGET', KEYS[1], 'job')
local now = tonumber(ARGV[2])
if state == 'queued' then
  local at = tonumber(redis.call('HGET', KEYS[1], 'requested_at') or '0')
  if now - at < tonumber(ARGV[7]) then return {job, 0} end
elseif state == 'running' and ARGV[6] == '0' then
  local at = tonumber(redis.call('HGET', KEYS[1], 'updated_at') or '0')
  if now - at < tonumber(ARGV[8]) then return {job, 0} end
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'job', ARGV[1], 'state', 'queued', 'revision', ARGV[3],
  'actor', ARGV[4], 'request_id', ARGV[5], 'requested_at', ARGV[2], 'updated_at', ARGV[2],
  'groups', 0, 'chunks', 0, 'created', 0, 'removed', 0, 'problems', 0, 'evaluations', 0,
  'change_rows', 0)
return {ARGV[1], 1}
"""

# KEYS: current. ARGV: job, now. -> the hash (flat) when the job is current and not
# finished; it becomes running.
_BEGIN = """
if redis.call('HGET', KEYS[1], 'job') ~= ARGV[1] then return nil end
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'queued' and state ~= 'running' then return nil end
if state == 'queued' then
  redis.call('HSET', KEYS[1], 'state', 'running', 'started_at', ARGV[2])
end
redis.call('HSET', KEYS[1], 'updated_at', ARGV[2])
return redis.call('HGETALL', KEYS[1])
"""

# KEYS: current, problems. ARGV: job, now, after ('' = none), max_problems, then the
# counts (COUNTS order), then problem JSONs. -> 1 when recorded.
_ADVANCE = """
if redis.call('HGET', KEYS[1], 'job') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'after', ARGV[3], 'updated_at', ARGV[2])
local names = {'groups', 'chunks', 'created', 'removed', 'problems', 'evaluations',
  'change_rows'}
for i, name in ipairs(names) do
  redis.call('HINCRBY', KEYS[1], name, ARGV[4 + i])
end
local room = tonumber(ARGV[4]) - redis.call('LLEN', KEYS[2])
for i = 5 + #names, #ARGV do
  if room <= 0 then break end
  redis.call('RPUSH', KEYS[2], ARGV[i])
  room = room - 1
end
return 1
"""

# KEYS: current, problems, last, last_problems. ARGV: job, now, state, error.
# done: the job becomes the last finished one (hash and problems copied / moved).
_FINISH = """
if redis.call('HGET', KEYS[1], 'job') ~= ARGV[1] then return 0 end
local started = tonumber(redis.call('HGET', KEYS[1], 'started_at') or ARGV[2])
redis.call('HSET', KEYS[1], 'state', ARGV[3], 'finished_at', ARGV[2], 'updated_at', ARGV[2],
  'seconds', string.format('%.3f', tonumber(ARGV[2]) - started))
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[4]) end
if ARGV[3] ~= 'done' then return 1 end
local fields = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[3], KEYS[4])
redis.call('HSET', KEYS[3], unpack(fields))
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('RENAME', KEYS[2], KEYS[4]) end
return 1
"""


def current_revision(database: Database, org_id: str) -> int:
    """The organization's revision (what a job requested now is measured against)."""
    with database.read() as session:
        org = session.get(Organization, org_id)
        return 0 if org is None else int(org.revision)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _fields(raw: Any) -> dict[str, str]:
    if isinstance(raw, dict):
        return {_s(k): _s(v) for k, v in raw.items()}
    flat = [_s(x) for x in raw or []]
    return dict(zip(flat[::2], flat[1::2], strict=True))


def request(
    client: Client,
    send: Send,
    org_id: str,
    *,
    revision: int,
    actor: str,
    request_id: str | None = None,
    restart_running: bool = True,
) -> tuple[dict[str, str], bool]:
    """Request a full application: ``(the job's fields, whether a new job was sent)``.

    A job queued less than ``QUEUED_COALESCE_S`` ago is returned as it is (it has not
    read anything yet). A running one is superseded by a new job when
    ``restart_running`` (an admin asked after it started: the new job sees the admin's
    state) and returned otherwise (the reconcile only needs one to run). A new job's
    message is sent after its hash is written; when sending fails the job is marked
    failed and the error raised (nothing runs)."""
    keys = JobKeys.of(org_id)
    job_id, created = client.register_script(_REQUEST)(
        keys=[keys.current, keys.problems],
        args=[
            uuid.uuid4().hex,
            repr(time.time()),
            str(revision),
            actor,
            request_id or "",
            "1" if restart_running else "0",
            str(QUEUED_COALESCE_S),
            str(STALE_RUNNING_S),
        ],
    )
    job = _s(job_id)
    if int(created):
        try:
            send(org_id, job)
        except Exception as exc:
            finish(client, org_id, job, state="failed", error=f"not enqueued: {type(exc).__name__}")
            raise
    return _fields(client.hgetall(keys.current)), bool(int(created))


def finish(client: Client, org_id: str, job_id: str, *, state: str, error: str = "") -> bool:
    """Mark the job ``state`` (``done`` also makes it the last finished one)."""
    keys = JobKeys.of(org_id)
    done = client.register_script(_FINISH)(
        keys=[keys.current, keys.problems, keys.last, keys.last_problems],
        args=[job_id, repr(time.time()), state, error],
    )
    return bool(int(done))


def problem_json(p: MappingProblem) -> str:
    return json.dumps(
        {"rule_id": p.rule_id, "group_id": p.group_id, "field": p.field, "message": p.message}
    )


def _advance(
    client: Client, org_id: str, job_id: str, after: str | None, report: RuleApplication
) -> bool:
    keys = JobKeys.of(org_id)
    counts = {
        "groups": report.groups,
        "chunks": int(report.groups > 0),
        "created": len(report.created),
        "removed": len(report.removed),
        "problems": len(report.problems),
        "evaluations": report.evaluations,
        "change_rows": int(report.revision is not None),
    }
    recorded = client.register_script(_ADVANCE)(
        keys=[keys.current, keys.problems],
        args=[
            job_id,
            repr(time.time()),
            after or "",
            str(MAX_PROBLEMS),
            *(str(counts[name]) for name in COUNTS),
            *(problem_json(p) for p in report.problems[:MAX_PROBLEMS]),
        ],
    )
    return bool(int(recorded))


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What one task of a job did; ``again``: send the next task (``countdown`` s)."""

    outcome: str  # done, continued, busy, superseded
    chunks: int = 0
    countdown: float | None = None

    @property
    def again(self) -> bool:
        return self.outcome in ("continued", "busy")

    def as_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "chunks": self.chunks}


def run(
    database: Database,
    client: Client,
    org_id: str,
    job_id: str,
    *,
    budget_s: float = RUN_BUDGET_S,
) -> RunOutcome:
    """Apply chunks of the job until it is done or ``budget_s`` has passed.

    One task at a time per organization (the lease); a second one comes back later
    (``busy``). Transient errors propagate (the task retries: the cursor only moves
    after a chunk committed, so the retry redoes at most that chunk)."""
    keys = JobKeys.of(org_id)
    lease = client.lock(keys.lease, timeout=LEASE_S, blocking=False, thread_local=False)
    if not lease.acquire():
        return RunOutcome("busy", countdown=BUSY_COUNTDOWN_S)
    try:
        raw = client.register_script(_BEGIN)(keys=[keys.current], args=[job_id, repr(time.time())])
        if raw is None:
            return RunOutcome("superseded")
        job = _fields(raw)
        after: str | None = job.get("after") or None
        actor = job.get("actor") or "worker"
        request_id = job.get("request_id") or None
        deadline = time.monotonic() + budget_s
        chunks = 0
        while True:
            with database.write() as session:
                report, after = apply_to_next_groups(
                    session, org_id, after, actor=actor, request_id=request_id
                )
            chunks += 1
            if not _advance(client, org_id, job_id, after, report):
                return RunOutcome("superseded", chunks)
            if after is None:
                finish(client, org_id, job_id, state="done")
                return RunOutcome("done", chunks)
            if time.monotonic() > deadline:
                return RunOutcome("continued", chunks)
    finally:
        with contextlib.suppress(redis.exceptions.LockError):
            lease.release()  # else it expired meanwhile (it outlives the hard limit)


def status(client: Client, org_id: str) -> tuple[dict[str, str], dict[str, str]]:
    """``(current job, last finished job)``; empty dicts when there is none."""
    keys = JobKeys.of(org_id)
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(keys.current)
    pipe.hgetall(keys.last)
    current, last = pipe.execute()
    return _fields(current), _fields(last)


def last_problems(client: Client, org_id: str) -> list[dict[str, Any]]:
    """The problems the last finished job found (at most ``MAX_PROBLEMS``)."""
    raw = client.lrange(JobKeys.of(org_id).last_problems, 0, -1)
    return [json.loads(_s(x)) for x in raw]
