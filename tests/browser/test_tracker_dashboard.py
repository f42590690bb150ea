"""A real browser visits a page with the tracker, and the dashboard shows that visit."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect
from support.browser import DESKTOP_USER_AGENT, log_in
from support.server import ServerProcess, wait_for

pytestmark = pytest.mark.browser

PARIS = {"latitude": 48.8566, "longitude": 2.3522}


@pytest.fixture
def site_origin(tmp_path: Path, server: ServerProcess) -> Iterator[str]:
    """A page on another origin than footfall's that embeds the tracker with geolocation."""
    (tmp_path / "page.html").write_text(
        "<!doctype html><title>Pricing</title><h1>Pricing</h1>"
        f'<script async src="{server.base_url}/tracker.js" data-geolocation="true"></script>'
    )
    handler = partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    http_server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=http_server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http_server.server_address[1]}"
    http_server.shutdown()


def test_tracked_visit_shown_on_dashboard(
    browser: Browser, server: ServerProcess, site_origin: str
) -> None:
    context = browser.new_context(
        geolocation=PARIS,
        permissions=["geolocation"],
        timezone_id="Asia/Tokyo",
        user_agent=DESKTOP_USER_AGENT,
    )
    visitor = context.new_page()
    visitor.goto(f"{site_origin}/page.html")

    def first_visit() -> dict[str, object] | None:
        visits = httpx.get(f"{server.base_url}/api/stats", headers=server.auth_headers).json()[
            "latest_visits"
        ]
        return visits[0] if visits else None

    visit = wait_for(first_visit)
    assert visit["timezone"] == "Asia/Tokyo"
    assert visit["latitude"] == PARIS["latitude"]
    assert visit["longitude"] == PARIS["longitude"]
    assert visit["url"] == f"{site_origin}/page.html"
    assert visit["title"] == "Pricing"

    dashboard = context.new_page()
    log_in(dashboard, server)
    row = dashboard.locator(f'[data-testid="visit-row"][data-id="{visit["id"]}"]')
    expect(row).to_be_visible(timeout=6_000)
    expect(row.locator('[data-field="timezone"]')).to_have_text("Asia/Tokyo")
    expect(row.locator('[data-field="latitude"]')).to_have_text("48.8566")
    expect(row.locator('[data-field="longitude"]')).to_have_text("2.3522")
    expect(row.locator('[data-field="ip"]')).to_have_text("127.0.0.1")
    expect(dashboard.locator('[data-testid="total-visits"]')).to_have_text("1")
    context.close()


def test_dashboard_refreshes_by_itself(browser: Browser, server: ServerProcess) -> None:
    context = browser.new_context(user_agent=DESKTOP_USER_AGENT)
    dashboard = context.new_page()
    log_in(dashboard, server)
    expect(dashboard.locator('[data-testid="total-visits"]')).to_have_text("0", timeout=6_000)

    response = httpx.post(
        f"{server.base_url}/api/events",
        json={"timezone": "America/Chicago", "email": "ada@example.com"},
    )
    assert response.status_code == 202

    row = dashboard.locator(f'[data-testid="visit-row"][data-id="{response.json()["id"]}"]')
    expect(row).to_be_visible(timeout=6_000)
    expect(row.locator('[data-field="email"]')).to_have_text("ada@example.com")
    expect(row.locator('[data-field="timezone"]')).to_have_text("America/Chicago")
    expect(dashboard.locator('[data-testid="total-visits"]')).to_have_text("1")
    context.close()


def test_tracker_without_geolocation_opt_in(
    browser: Browser, server: ServerProcess, tmp_path: Path
) -> None:
    """Without data-geolocation the tracker sends at once and never requests the position."""
    context = browser.new_context(
        geolocation=PARIS, permissions=["geolocation"], user_agent=DESKTOP_USER_AGENT
    )
    page = context.new_page()
    page.goto(f"{server.base_url}/healthz")
    page.add_script_tag(url=f"{server.base_url}/tracker.js")

    def visits() -> list[dict[str, object]] | None:
        latest = httpx.get(f"{server.base_url}/api/stats", headers=server.auth_headers).json()[
            "latest_visits"
        ]
        return latest or None

    visit = wait_for(visits)[0]
    assert visit["latitude"] is None
    assert visit["longitude"] is None
    assert visit["timezone"]
    context.close()
