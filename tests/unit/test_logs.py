"""Structured JSON logs: one object per line, request id attached, secrets masked."""

from __future__ import annotations

import io
import json
import logging

from fastapi.testclient import TestClient

from idsync.logs import bind_request_id, configure_logging


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_lines_with_request_id_and_redaction() -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    log = logging.getLogger("idsync.test")
    with bind_request_id("req-42"):
        log.info(
            "calling upstream with Bearer abc.def.ghi and token=s3cr3t",
            extra={"headers": {"Authorization": "Bearer xyz", "Accept": "json"}, "count": 3},
        )
    log.warning("outside")
    first, second = _lines(stream)
    assert first["level"] == "INFO" and first["logger"] == "idsync.test"
    assert first["request_id"] == "req-42"
    assert first["count"] == 3
    assert "abc.def.ghi" not in json.dumps(first) and "s3cr3t" not in json.dumps(first)
    assert first["headers"] == {"Authorization": "[REDACTED]", "Accept": "json"}
    assert second["request_id"] is None and second["level"] == "WARNING"


def test_http_requests_log_their_id_and_never_the_token(orgs_app: TestClient) -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    r = orgs_app.get(
        "/scim/v2/Users",
        headers={"Authorization": "Bearer idsync_scim_supersecret", "X-Request-Id": "rid-7"},
    )
    assert r.status_code == 401
    assert r.headers["x-request-id"] == "rid-7"
    text = stream.getvalue()
    assert "supersecret" not in text
    request_lines = [e for e in _lines(stream) if e.get("msg") == "request"]
    assert request_lines and request_lines[-1]["request_id"] == "rid-7"
    assert request_lines[-1]["status"] == 401


def test_secret_settings_never_show_in_reprs() -> None:
    from models.settings import Settings

    settings = Settings(
        IDSYNC_IDP_TOKEN="okta-api-token-1",
        IDSYNC_IDP_CLIENT_SECRET="graph-secret-2",
        IDSYNC_CHECK_API_TOKEN="service-token-3",
    )
    text = repr(settings) + str(settings.model_dump())
    for secret in ("okta-api-token-1", "graph-secret-2", "service-token-3"):
        assert secret not in text
    assert Settings.reveal(settings.idp_token) == "okta-api-token-1"
