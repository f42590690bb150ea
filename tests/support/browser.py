"""Shared settings for the Playwright tests, and the dashboard login a person would do."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from support.server import ServerProcess

CHROMIUM_PATH = "/usr/bin/chromium"
# Without these flags Chromium keeps trying to reach Google's hosts, which this network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# The headless user agent names HeadlessChrome; a visitor's browser does not.
DESKTOP_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/156.0.0.0 Safari/537.36"
)


def log_in(page: Page, server: ServerProcess, token: str | None = None) -> None:
    """Open the dashboard, get sent to the login form, and log in with the server's token."""
    page.goto(f"{server.base_url}/")
    expect(page).to_have_url(f"{server.base_url}/login")
    page.fill("#token", token or server.token or "")
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{server.base_url}/")
