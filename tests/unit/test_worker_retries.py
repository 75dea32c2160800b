"""Which failures a worker task retries (``worker.tasks.TRANSIENT``, with the tasks'
own options): a Redis Cluster failing over or resharding is retried like an unreachable
Redis; an error no retry can fix (a cross-slot call) fails at once."""

from __future__ import annotations

import pytest
import redis
from celery import Celery, Task
from redis.exceptions import (
    ClusterCrossSlotError,
    ClusterDownError,
    MasterDownError,
    SlotNotCoveredError,
    TryAgainError,
)

from worker.tasks import COMMON

RETRIES = 2


def _attempts(error: Exception) -> int:
    """How many times a task with the worker's options runs when it always raises ``error``."""
    app = Celery("retries", broker="memory://")
    calls: list[int] = []

    @app.task(
        name="retries.fail",
        **{**COMMON, "max_retries": RETRIES, "retry_backoff": False, "default_retry_delay": 0},
    )
    def fail(self: Task) -> None:  # type: ignore[type-arg]
        calls.append(1)
        raise error

    assert fail.apply().state == "FAILURE"
    return len(calls)


@pytest.mark.parametrize(
    "error",
    [
        ClusterDownError("CLUSTERDOWN The cluster is down"),
        MasterDownError("MASTERDOWN Link with MASTER is down"),
        TryAgainError("TRYAGAIN Multiple keys request during rehashing of slot"),
        SlotNotCoveredError("slot 1234 is not covered by the cluster"),
        redis.ConnectionError("Connection refused"),
        redis.TimeoutError("Timeout reading"),
    ],
)
def test_a_redis_that_may_come_back_is_retried(error: Exception) -> None:
    assert _attempts(error) == 1 + RETRIES


def test_a_cross_slot_error_is_not_retried() -> None:
    assert _attempts(ClusterCrossSlotError("CROSSSLOT Keys don't hash to the same slot")) == 1
