"""Tracing set-up: off unless the OpenTelemetry variables ask for it (then nothing is
installed at all), the resource the SDK reads from the environment, SERVER spans named
by route template, and a dead collector that never holds a span's caller."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION
from opentelemetry.trace import SpanKind, StatusCode

from idsync.server_spans import ServerSpans, install_tracing
from models.tracing import EXIT_FLUSH_S, configured, resource
from tests.support.spans import by_name, hex_ids, memory_spans  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, False),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SERVICE_NAME": "idsync"}, False),  # naming a service exports nothing
    ],
)
def test_tracing_is_configured_only_by_an_endpoint_or_an_exporter(
    env: dict[str, str], on: bool
) -> None:
    assert configured(env) is on


def test_the_resource_takes_the_service_name_and_attributes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):
        monkeypatch.delenv(name, raising=False)
    default = resource("idsync-api").attributes
    assert default[SERVICE_NAME] == "idsync-api"
    assert default[SERVICE_VERSION]

    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=sso,deployment.environment=prod")
    assert resource("idsync-api").attributes[SERVICE_NAME] == "sso"
    assert resource("idsync-api").attributes["deployment.environment"] == "prod"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "idsync-eu")  # wins over the attribute
    assert resource("idsync-worker").attributes[SERVICE_NAME] == "idsync-eu"


def _python(script: str, env: dict[str, str], timeout: float = 60) -> tuple[str, float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, time.monotonic() - started


def _env_without_otel(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(PYTHONPATH=str(ROOT), **extra)
    return env


def test_with_no_otel_variable_nothing_is_installed() -> None:
    """A fresh process, as `idsync serve` / a worker starts: no provider, no middleware,
    no Celery signal receiver, FastAPI's own telemetry left as it was, and the spans
    below the entry points are the API's invalid span."""
    out, _ = _python(
        """
        from celery.signals import before_task_publish, task_prerun, worker_process_init
        from fastapi import FastAPI
        from opentelemetry import trace
        from opentelemetry.trace import INVALID_SPAN

        from idsync.server_spans import install_tracing
        from models.tracing import installed, span
        from worker.task_spans import install_task_spans

        app = FastAPI()
        before = dict(getattr(app, "_telemetry", {}))
        assert install_tracing(app) is False
        assert install_task_spans() is False
        assert app.user_middleware == []
        assert dict(getattr(app, "_telemetry", {})) == before
        assert not installed()
        assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
        for signal in (before_task_publish, task_prerun, worker_process_init):
            assert not [r for r in signal.receivers if "idsync" in repr(r)], signal.receivers
        with span("idsync.db.write") as current:
            assert current is INVALID_SPAN
        print("nothing installed")
        """,
        _env_without_otel(),
    )
    assert out.strip() == "nothing installed"


def test_a_dead_collector_never_holds_a_span_or_the_exit() -> None:
    """The collector accepts connections and never answers (export timeout 10 s): ending
    spans stays as fast as ever, and the process exits within EXIT_FLUSH_S."""
    with socket.socket() as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(64)  # never accepted, never answered
        port = blackhole.getsockname()[1]
        out, elapsed = _python(
            """
            import time
            from models.tracing import install_provider, tracer

            assert install_provider("idsync-test")
            started = time.perf_counter()
            for _ in range(2000):
                with tracer().start_as_current_span("request"):
                    pass
            print(f"{(time.perf_counter() - started) / 2000 * 1e6:.1f}")
            time.sleep(0.3)  # the export thread is now waiting on the dead collector
            """,
            _env_without_otel(
                OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"http://127.0.0.1:{port}/v1/traces",
                OTEL_EXPORTER_OTLP_TIMEOUT="10",
                OTEL_BSP_SCHEDULE_DELAY="50",
            ),
        )
    per_span_us = float(out.strip())
    assert per_span_us < 500, per_span_us  # microseconds; nothing waits on the network
    assert elapsed < EXIT_FLUSH_S + 8, elapsed  # interpreter start + 2 s, not the 10 s timeout


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    @app.get("/broken")
    async def broken() -> None:
        raise RuntimeError("boom")

    return app


def test_server_spans_are_named_by_route_template_and_continue_an_incoming_trace(
    memory_spans: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    app = _app()
    assert install_tracing(app)
    assert install_tracing(app)  # idempotent: one middleware
    assert sum(getattr(m, "cls", None) is ServerSpans for m in app.user_middleware) == 1
    incoming_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/things/u-123").status_code == 200
        assert client.get("/nowhere/u-123").status_code == 404
        assert client.get("/broken").status_code == 500
        assert client.request("BREW", "/things/u-123").status_code == 405
        client.get(
            "/things/u-456", headers={"traceparent": f"00-{incoming_trace}-00f067aa0ba902b7-01"}
        )
    spans = memory_spans.get_finished_spans()
    assert all(s.kind is SpanKind.SERVER for s in spans)  # FastAPI's own spans are off
    names = [s.name for s in spans]
    assert names == [
        "GET /things/{thing_id}",
        "GET",
        "GET /broken",
        "_OTHER /things/{thing_id}",
        "GET /things/{thing_id}",
    ]
    ok, unmatched, broken, other, continued = spans
    assert ok.attributes == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "http.route": "/things/{thing_id}",
        "http.response.status_code": 200,
    }
    assert unmatched.attributes is not None and "http.route" not in unmatched.attributes
    assert broken.status.status_code is StatusCode.ERROR
    assert by_name(spans, "GET")[0].status.status_code is StatusCode.UNSET  # a 404 is no error
    assert other.attributes is not None and other.attributes["http.request.method"] == "_OTHER"
    assert hex_ids(continued)[0] == incoming_trace
    assert hex_ids(continued)[2] == "00f067aa0ba902b7"
    assert not any(
        "u-123" in str(v) or "u-456" in str(v) for s in spans for v in (s.attributes or {}).values()
    )
