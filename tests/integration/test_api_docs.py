"""The OpenAPI page renders with no internet access: Swagger UI (/docs) loads its script,
styles and favicon from idsync itself, never from a CDN (and there is no /redoc, whose
bundle loads its logo from a CDN).

The browser test drives Debian's headless Chromium (`chromium` + `chromium-driver`; the
test fails, not skips, where they are missing) with every host name except loopback made
unresolvable, and checks from Chromium's own network log that the page asked for nothing
outside 127.0.0.1. With IDSYNC_UPDATE_SCREENSHOTS=1 it also writes docs/images/openapi.png.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from idsync.api_docs import ASSET_FILES, ASSETS_PREFIX
from idsync.app import create_app
from models.settings import Settings
from tests.conftest import REDIS_TEST_URL
from tests.support.chromium import chromium, requested_urls
from tests.support.live_server import live_server

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "images" / "openapi.png"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    settings = Settings(
        IDSYNC_DATA_DIR=tmp_path,
        DATABASE_URL=f"sqlite:///{tmp_path / 'docs.db'}",
        REDIS_URL=REDIS_TEST_URL,
    )
    application = create_app(settings)
    yield application
    application.state.db.dispose()


def test_docs_pages_reference_only_their_own_server(app: FastAPI) -> None:
    with TestClient(app) as client:
        html = client.get("/docs")
        assert html.status_code == 200
        # Every URL in the page (src, href, the schema's url) is server-relative.
        absolute = re.findall(r"""(?:https?:)?//[^\s'"<>)]+""", html.text)
        assert absolute == [], f"/docs loads {absolute}"
        assert f"{ASSETS_PREFIX}/swagger-ui-bundle.js" in html.text
        assert client.get("/redoc").status_code == 404
        for name in ASSET_FILES:
            asset = client.get(f"{ASSETS_PREFIX}/{name}")
            assert asset.status_code == 200, name
            assert len(asset.content) > 1000, name
        assert client.get("/docs/oauth2-redirect").status_code == 200
        assert client.get(f"{ASSETS_PREFIX}/../app.py").status_code == 404
        # The pages are not operations of the API.
        paths = client.get("/openapi.json").json()["paths"]
        assert not {"/docs", "/docs/oauth2-redirect"} & set(paths)


def test_swagger_ui_renders_offline(app: FastAPI, tmp_path: Path) -> None:
    driver = chromium()
    try:
        with live_server(app) as base:
            driver.get(f"{base}/docs")
            operations = WebDriverWait(driver, 60).until(
                lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock") or False
            )
            paths = {
                element.text
                for element in driver.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
            }
            assert "/healthz" in paths and "/api/v1/explain" in paths, paths
            assert len(operations) >= 10
            assert driver.find_elements(By.CSS_SELECTOR, ".swagger-ui .info .title")
            shot = driver.get_screenshot_as_png()
            assert shot.startswith(PNG_MAGIC)
            requests = requested_urls(driver)
    finally:
        driver.quit()

    assert any(url.endswith("/swagger-ui-bundle.js") for url in requests)
    assert any(url.endswith("/openapi.json") for url in requests)
    outside = [
        url
        for url in requests
        if urlsplit(url).scheme in ("http", "https", "ws", "wss")
        and urlsplit(url).hostname != "127.0.0.1"
    ]
    assert outside == [], f"the page asked for {outside}"
    if os.environ.get("IDSYNC_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        SCREENSHOT.write_bytes(shot)
