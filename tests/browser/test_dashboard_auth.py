"""The dashboard login, the public dashboard and the CSP, in headless Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Response, expect
from playwright.sync_api import Error as PlaywrightError
from support.browser import DESKTOP_USER_AGENT, log_in
from support.server import ServerProcess, StartServer, wait_for

pytestmark = pytest.mark.browser

LINK_LINE = re.compile(r"^ {4}(http://\S+/login/link\?code=[A-Za-z0-9_-]+)$", re.MULTILINE)
VISITORS = [
    ("203.0.113.77", "jane.doe@example.com"),
    ("2001:db8:1:2::7", "bob.smith@example.org"),
]


class WatchedPage:
    """A page that records CSP violations, script errors and the bodies of API responses."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.csp_violations: list[str] = []
        self.script_errors: list[str] = []
        self.api_bodies: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.script_errors.append(str(error)))
        page.on("response", self._on_response)

    def _on_console(self, message: ConsoleMessage) -> None:
        # Chromium reports each blocked script, style or fetch as a console error that names
        # the Content Security Policy. Failed loads (the 401 of a wrong login) are expected.
        if "Content Security Policy" in message.text:
            self.csp_violations.append(message.text)

    def _on_response(self, response: Response) -> None:
        if "/api/" not in response.url or not response.ok:
            return
        try:
            self.api_bodies.append(response.text())
        except PlaywrightError:
            # The page navigated away (to the login form) before the body was read.
            return


@pytest.fixture
def watched(browser: Browser) -> Iterator[WatchedPage]:
    context = browser.new_context(user_agent=DESKTOP_USER_AGENT)
    yield WatchedPage(context.new_page())
    context.close()


def test_login_renders_dashboard_under_csp(watched: WatchedPage, server: ServerProcess) -> None:
    page = watched.page
    page.goto(f"{server.base_url}/")
    expect(page).to_have_url(f"{server.base_url}/login")

    page.fill("#token", "ff.wrong.token")
    page.click("button[type=submit]")
    expect(page.locator("[role=alert]")).to_have_text("Invalid or revoked token.")

    log_in(page, server)
    document = page.reload()
    expect(page.locator('[data-testid="total-visits"]')).to_have_text("0", timeout=6_000)

    assert document is not None
    assert "script-src 'self'" in document.headers["content-security-policy"]
    assert watched.csp_violations == []
    assert watched.script_errors == []


def test_logout_button_ends_session(watched: WatchedPage, server: ServerProcess) -> None:
    page = watched.page
    log_in(page, server)
    expect(page.locator('[data-testid="total-visits"]')).to_have_text("0", timeout=6_000)

    page.click('[data-testid="logout"]')
    expect(page).to_have_url(f"{server.base_url}/login")
    page.goto(f"{server.base_url}/")

    expect(page).to_have_url(f"{server.base_url}/login")


def test_revoked_session_goes_to_login(watched: WatchedPage, server: ServerProcess) -> None:
    created = server.token_command("create", "--name", "viewer", "--role", "read")
    token = created.stdout.strip()
    page = watched.page
    log_in(page, server, token)
    expect(page.locator('[data-testid="total-visits"]')).to_have_text("0", timeout=6_000)

    revoked = server.token_command("revoke", token.split(".")[1])
    assert revoked.returncode == 0, revoked.stderr

    expect(page).to_have_url(f"{server.base_url}/login", timeout=10_000)


def test_first_run_link_opens_dashboard_once(browser: Browser, start_server: StartServer) -> None:
    server = start_server(provision_token=False)
    [link] = LINK_LINE.findall(server.log_path.read_text())

    first = browser.new_context(user_agent=DESKTOP_USER_AGENT)
    page = first.new_page()
    page.goto(link)
    expect(page).to_have_url(f"{server.base_url}/")
    expect(page.locator('[data-testid="total-visits"]')).to_have_text("0", timeout=6_000)
    first.close()

    second = browser.new_context(user_agent=DESKTOP_USER_AGENT)
    page = second.new_page()
    page.goto(link)
    expect(page.locator("[role=alert]")).to_contain_text("invalid, used or expired")
    second.close()


def test_public_dashboard_hides_personal_data(
    watched: WatchedPage, start_server: StartServer
) -> None:
    server = start_server(["--public-dashboard", "--trusted-proxy", "127.0.0.0/8"])
    with server.client() as http:
        for ip, email in VISITORS:
            body = {"timezone": "UTC", "email": email}
            response = http.post("/api/events", json=body, headers={"x-forwarded-for": ip})
            assert response.status_code == 202
        wait_for(lambda: http.get("/api/stats").json()["total_visits"] == len(VISITORS))

    page = watched.page
    page.goto(f"{server.base_url}/")
    expect(page).to_have_url(f"{server.base_url}/")
    expect(page.locator('[data-testid="visit-row"]')).to_have_count(2, timeout=6_000)
    expect(page.locator('[data-testid="top-visitor-row"]')).to_have_count(2)

    shown = page.content() + "".join(watched.api_bodies)
    assert watched.api_bodies
    for full in ["203.0.113.77", "2001:db8:1:2::7", "jane.doe", "bob.smith"]:
        assert full not in shown, full
    for masked in ["203.0.113.0/24", "2001:db8:1::/48", "j***@example.com", "b***@example.org"]:
        assert masked in shown, masked
    assert watched.csp_violations == []
    assert watched.script_errors == []
