"""Debian's headless Chromium through chromedriver, for the browser tests (the offline
OpenAPI page, the web console). Missing, a test fails and says what to install; it never
skips. Every host name but 127.0.0.1 fails to resolve: a page that asks the internet for
anything shows up in `requested_urls`."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = os.environ.get("IDSYNC_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("IDSYNC_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")


def chromium(width: int = 1280, height: int = 1000) -> webdriver.Chrome:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        pytest.fail(
            f"{missing} not found: install Debian's chromium and chromium-driver "
            "(scripts/test.sh does) or set IDSYNC_TEST_CHROMIUM / IDSYNC_TEST_CHROMEDRIVER"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        "--hide-scrollbars",
        # No internet: every host name but loopback fails to resolve.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    try:
        return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    except Exception as exc:
        pytest.fail(f"headless Chromium ({CHROMIUM}, {CHROMEDRIVER}) did not start: {exc}")


def requested_urls(driver: webdriver.Chrome) -> list[str]:
    """Every URL the browser asked for since the last call (Chromium's network log)."""
    urls = []
    for entry in driver.get_log("performance"):  # type: ignore[no-untyped-call]
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls
