"""A real headless Chromium (Debian's, driven by Playwright) for the dashboard tests.

`playwright install` downloads browsers, which labs without internet cannot do: the Makefile installs Debian's
chromium instead. Without it these tests skip, unless EDGEFARM_REQUIRE_SERVICES=1 (CI), where that fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_SERVICES

CHROMIUM = Path(os.environ.get("EDGEFARM_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# Set by docs/screenshots/make.py: where the tests save a screenshot of each page.
SCREENSHOTS = os.environ.get("EDGEFARM_SCREENSHOTS")


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.is_file():
        message = (f"{CHROMIUM} is missing: the dashboard tests need Debian's chromium "
                   "(`apt-get install chromium`; `make test` installs it when run as root)")
        if REQUIRE_SERVICES:
            pytest.fail(f"EDGEFARM_REQUIRE_SERVICES=1 but {message}")
        pytest.skip(message)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if REQUIRE_SERVICES:
            pytest.fail("EDGEFARM_REQUIRE_SERVICES=1 but playwright is not installed (pip install -e '.[dev]')")
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def anonymous_page(browser):
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def sign_in(page, url: str, token: str) -> None:
    page.goto(f"{url}/login")
    page.fill("#token", token)
    page.click("form[action='/login'] button[type=submit]")


@pytest.fixture
def signed_in_page(anonymous_page, gateway):
    sign_in(anonymous_page, gateway.url, gateway.admin_token)
    anonymous_page.wait_for_url(f"{gateway.url}/jobs")
    return anonymous_page


def screenshot(page, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)
