"""The console in a real browser: Debian's headless Chromium (fails, never skips, without
it) against a real server, with every host but 127.0.0.1 unresolvable.

Signs in with a key made by docs/console.md's command, by keyboard; finds a person as one
types (htmx); opens their page; explains a deny in the explorer; is refused a person of
another organization and a write without the CSRF token; signs out. Checks the session
cookie's flags as the browser holds it, the layout at 1280x800 and at phone width, and
that no page asked for anything outside the server. With IDSYNC_UPDATE_SCREENSHOTS=1 it
writes docs/images/console-overview.png and docs/images/console-explorer.png.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from idsync.app import create_app
from models.credentials import ADMIN_KEY_PREFIX
from models.db.database import Database
from models.settings import Settings
from tests.conftest import REDIS_TEST_URL
from tests.integration.console.world import World, build_world
from tests.support.chromium import chromium, requested_urls
from tests.support.live_server import live_server

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "console.md"
IMAGES = ROOT / "docs" / "images"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SH_BLOCK = re.compile(r"```sh\n(.*?)```", re.S)
PHONE = (390, 844)
DESKTOP = (1280, 800)


def key_from_the_docs(database: Database, data_dir: Path) -> str:
    """Run docs/console.md's command block as written (from the project root) against the
    test's database; the key is its last line."""
    (snippet,) = SH_BLOCK.findall(DOC.read_text())
    env = {**os.environ, "DATABASE_URL": database.url, "IDSYNC_DATA_DIR": str(data_dir)}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", snippet],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip().splitlines()[-1]
    assert key.startswith(ADMIN_KEY_PREFIX), done.stdout
    return key


@pytest.fixture
def served(database: Database, tmp_path: Path) -> Iterator[tuple[str, World, str]]:
    settings = Settings(IDSYNC_DATA_DIR=tmp_path, REDIS_URL=REDIS_TEST_URL)
    app = create_app(settings, db=database)
    with live_server(app) as base:
        with httpx.Client(base_url=base, timeout=30) as client:
            world = build_world(database, client)
        yield base, world, key_from_the_docs(database, tmp_path)


@pytest.fixture
def driver() -> Iterator[webdriver.Chrome]:
    browser = chromium(*DESKTOP)
    try:
        yield browser
    finally:
        browser.quit()


def wait_for(driver: webdriver.Chrome, css: str, text: str | None = None) -> WebElement:
    def found(d: Any) -> WebElement | bool:
        for element in d.find_elements(By.CSS_SELECTOR, css):
            if text is None or text in element.text:
                return element  # type: ignore[no-any-return]
        return False

    element = WebDriverWait(driver, 20).until(found)
    assert isinstance(element, WebElement)
    return element


def fits_the_width(driver: webdriver.Chrome) -> bool:
    overflow = driver.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    return int(overflow) <= 0


def label_of(driver: webdriver.Chrome, field_id: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, f"label[for='{field_id}']").text)


def screenshot(driver: webdriver.Chrome, name: str) -> None:
    shot = driver.get_screenshot_as_png()
    assert shot.startswith(PNG_MAGIC)
    if os.environ.get("IDSYNC_UPDATE_SCREENSHOTS") == "1":
        IMAGES.mkdir(parents=True, exist_ok=True)
        (IMAGES / name).write_bytes(shot)


def test_sign_in_find_a_person_explain_a_deny_sign_out(
    served: tuple[str, World, str], driver: webdriver.Chrome
) -> None:
    base, world, key = served

    # Signed out, a page leads to sign-in; the key is typed and sent with Enter.
    driver.get(f"{base}/console/")
    wait_for(driver, "h1", "Sign in")
    assert "/console/signin?next=" in driver.current_url
    assert label_of(driver, "admin_key") == "Admin key"
    driver.find_element(By.ID, "admin_key").send_keys(key, Keys.ENTER)
    wait_for(driver, "h1", "Overview")
    assert driver.find_element(By.ID, "org-name").text == "acme"
    assert "Permission cache" in driver.page_source
    assert fits_the_width(driver)
    screenshot(driver, "console-overview.png")

    # The session cookie as the browser keeps it.
    cookies = {c["name"]: c for c in driver.get_cookies()}
    session = cookies["idsync_console"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert session["path"] == "/console"
    assert session["secure"] is False  # plain http on loopback
    assert "expiry" not in session  # a browser-session cookie; the server expires it
    assert "idsync_console_signin" not in cookies
    assert driver.execute_script("return document.cookie") == ""  # HttpOnly: no script sees it

    # Keyboard: the first Tab stop is the skip link.
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    assert driver.switch_to.active_element.text == "Skip to content"

    # People: the search updates as one types (htmx), then a person's page.
    driver.find_element(By.LINK_TEXT, "People").click()
    wait_for(driver, "h1", "People")
    assert label_of(driver, "q") == "Search by user name, display name or email"
    driver.find_element(By.ID, "q").send_keys("ada")
    wait_for(driver, "#result-count", "1 person")
    assert "q=ada" in driver.current_url  # the address names the search (hx-push-url)
    driver.find_element(By.LINK_TEXT, "ada@acme.test").click()
    wait_for(driver, "h1", "Ada Lovelace")
    assert "analysts" in driver.find_element(By.ID, "person-groups").text
    assert "analysts → editor (bound by hand)" in driver.page_source

    # The explorer: a deny, explained; the question is asked with Enter.
    driver.find_element(By.PARTIAL_LINK_TEXT, "access explorer").click()
    wait_for(driver, "h1", "Access explorer")
    assert driver.find_element(By.ID, "user").get_attribute("value") == "ada@acme.test"
    for field_id in ("user", "workspace", "grant", "resource_type", "resource_id", "space_id"):
        assert label_of(driver, field_id)
    Select(driver.find_element(By.ID, "workspace")).select_by_value("marketing")
    driver.find_element(By.ID, "grant").send_keys("manage_destination")
    driver.find_element(By.ID, "resource_type").send_keys("destination")
    driver.find_element(By.ID, "resource_id").send_keys("d1", Keys.ENTER)
    wait_for(driver, "#answer-reason", "grant_missing")
    assert driver.find_element(By.ID, "answer-status").text.lower() == "deny"  # shown upper case
    assert "none of the person's groups holds that grant here" in (
        driver.find_element(By.ID, "answer-sentence").text
    )
    assert driver.find_elements(By.CSS_SELECTOR, "#answer-missing li")
    assert "group analysts holds role editor, bound by hand" in driver.page_source.replace(
        "<strong>", ""
    ).replace("</strong>", "")
    assert "grant=manage_destination" in driver.current_url
    assert fits_the_width(driver)
    screenshot(driver, "console-explorer.png")

    # At phone width the same page fits, its fields one under another.
    driver.set_window_size(*PHONE)
    driver.refresh()
    wait_for(driver, "#answer-reason", "grant_missing")
    assert fits_the_width(driver)
    user_box = driver.find_element(By.ID, "user").rect
    grant_box = driver.find_element(By.ID, "grant").rect
    assert grant_box["y"] > user_box["y"] and abs(grant_box["x"] - user_box["x"]) < 2
    driver.set_window_size(*DESKTOP)

    # Another organization's person is not there; a write without the token is refused.
    driver.get(f"{base}/console/people/{world.eve}")
    wait_for(driver, "h1", "Error 404")
    assert "eve@globex.test" not in driver.page_source
    refused = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/console/signout', {method: 'POST', credentials: 'same-origin'})"
        ".then(r => done(r.status), e => done(String(e)));"
    )
    assert refused == 403
    driver.get(f"{base}/console/")
    wait_for(driver, "h1", "Overview")  # still signed in

    # Sign out: the session is gone, a page leads to sign-in again.
    driver.find_element(By.ID, "signout").click()
    wait_for(driver, "h1", "Sign in")
    assert "idsync_console" not in {c["name"] for c in driver.get_cookies()}
    driver.get(f"{base}/console/explorer")
    wait_for(driver, "h1", "Sign in")

    outside = [
        url
        for url in requested_urls(driver)
        if urlsplit(url).scheme in ("http", "https", "ws", "wss")
        and urlsplit(url).hostname != "127.0.0.1"
    ]
    assert outside == [], f"the console asked for {outside}"
