"""Plausible's and Umami's own trackers, from the npm registry, send to footfall unchanged.

Each test serves a page from another origin than footfall's, with the tracker pointed at
footfall the way a site would change its snippet. Then it checks that footfall's stats show
exactly the pageview, the custom event and (Umami) the route change that the page made.
The packages are installed at test time into a temporary folder, never committed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Request, expect
from support.browser import DESKTOP_USER_AGENT, log_in
from support.server import ServerProcess, wait_for
from support.stats import read_stats, settled_visits

pytestmark = pytest.mark.browser

PLAUSIBLE_PACKAGE = "@plausible-analytics/tracker@0.4.6"
OLD_PLAUSIBLE_PACKAGE = "plausible-tracker@0.3.9"
UMAMI_PACKAGE = "umami@2.10.0"
NPM_TIMEOUT_S = 300

SHOP = "shop.example"
WEBSITE_ID = "5d2b7c9e-0f3a-4e61-8b2d-7c4f1a9e3b60"


def run_npm(args: list[str], cwd: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(
            "npm not found: these tests install Plausible's and Umami's trackers from the npm "
            "registry. Install Node.js with npm (Debian: apt-get install npm) and run them again."
        )
    result = subprocess.run(
        [npm, *args, "--no-audit", "--no-fund", "--ignore-scripts"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=NPM_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"npm {' '.join(args)} failed with {result.returncode}:\n{result.stderr}")


@pytest.fixture(scope="module")
def site_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the installed trackers, served as the site's document root."""
    root = tmp_path_factory.mktemp("site")
    (root / "package.json").write_text('{"private": true}')
    run_npm(["install", "--no-package-lock", PLAUSIBLE_PACKAGE, OLD_PLAUSIBLE_PACKAGE], root)

    # Umami publishes its whole app. Its tracker is plain browser JavaScript whose only
    # build step replaces the collector path, which a site that keeps /api/send skips.
    run_npm(["pack", UMAMI_PACKAGE], root)
    [archive] = root.glob("umami-*.tgz")
    with tarfile.open(archive) as tar:
        source = tar.extractfile("package/src/tracker/index.js")
        assert source is not None
        (root / "umami.js").write_bytes(source.read())
    return root


@pytest.fixture
def site_origin(site_root: Path) -> Iterator[str]:
    handler = partial(SimpleHTTPRequestHandler, directory=str(site_root))
    http_server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=http_server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http_server.server_address[1]}"
    http_server.shutdown()
    http_server.server_close()


def open_page(browser: Browser, server: ServerProcess, url: str) -> tuple[Page, list[Request]]:
    """Open `url` as a visitor's browser would, recording the POSTs that reach footfall."""
    context = browser.new_context(user_agent=DESKTOP_USER_AGENT)
    page = context.new_page()
    posts: list[Request] = []

    def record(request: Request) -> None:
        if request.method == "POST" and request.url.startswith(server.base_url):
            posts.append(request)

    page.on("request", record)
    page.goto(url)
    return page, posts


def wait_for_total(server: ServerProcess, site: str, total: int) -> None:
    with server.client() as http:
        wait_for(lambda: read_stats(http, site)["total_visits"] >= total)


def settled(server: ServerProcess, site: str) -> list[dict[str, Any]]:
    with server.client() as http:
        return settled_visits(http, site)


def sent_bodies(posts: list[Request]) -> list[dict[str, Any]]:
    return [json.loads(request.post_data or "null") for request in posts]


def test_plausible_tracker_pageview_and_event(
    browser: Browser, server: ServerProcess, site_root: Path, site_origin: str
) -> None:
    (site_root / "plausible.html").write_text(
        "<!doctype html><title>Plans</title><button id=signup>Sign up</button>\n"
        '<script type="module">\n'
        'import { init, track } from "/node_modules/@plausible-analytics/tracker/plausible.js";\n'
        f'init({{ domain: "{SHOP}", endpoint: "{server.base_url}/api/event",'
        " captureOnLocalhost: true });\n"
        'document.getElementById("signup").addEventListener("click", () =>\n'
        '  track("Signup", { props: { plan: "pro" } }));\n'
        "</script>\n"
    )
    page, posts = open_page(browser, server, f"{site_origin}/plausible.html")
    wait_for_total(server, SHOP, 1)
    page.click("#signup")
    wait_for_total(server, SHOP, 2)
    page.context.close()

    visits = settled(server, SHOP)
    assert [visit["url"] for visit in visits] == [f"{site_origin}/plausible.html"] * 2
    assert [visit["title"] for visit in visits] == [None, "event: Signup"]
    assert [visit["timezone"] for visit in visits] == [None, None]
    signup = [body for body in sent_bodies(posts) if body["n"] == "Signup"]
    assert signup[0]["p"] == {"plan": "pro"}


def test_old_plausible_tracker_props_string(
    browser: Browser, server: ServerProcess, site_root: Path, site_origin: str
) -> None:
    # The package's ES module build imports "./lib/tracker" without an extension, as bundlers
    # allow. The import map lets the browser load those files as they are.
    module = "/node_modules/plausible-tracker/build/module"
    imports = {
        "plausible-tracker": f"{module}/index.js",
        f"{module}/lib/tracker": f"{module}/lib/tracker.js",
        f"{module}/lib/request": f"{module}/lib/request.js",
    }
    (site_root / "old-plausible.html").write_text(
        "<!doctype html><title>Plans</title><button id=signup>Sign up</button>\n"
        f'<script type="importmap">{json.dumps({"imports": imports})}</script>\n'
        '<script type="module">\n'
        'import Plausible from "plausible-tracker";\n'
        f'const plausible = Plausible({{ domain: "{SHOP}", apiHost: "{server.base_url}",'
        " trackLocalhost: true });\n"
        "plausible.trackPageview();\n"
        'document.getElementById("signup").addEventListener("click", () =>\n'
        '  plausible.trackEvent("Signup", { props: { plan: "pro" } }));\n'
        "</script>\n"
    )
    page, posts = open_page(browser, server, f"{site_origin}/old-plausible.html")
    wait_for_total(server, SHOP, 1)
    page.click("#signup")
    wait_for_total(server, SHOP, 2)
    page.context.close()

    visits = settled(server, SHOP)
    assert [visit["url"] for visit in visits] == [f"{site_origin}/old-plausible.html"] * 2
    assert [visit["title"] for visit in visits] == [None, "event: Signup"]
    signup = [body for body in sent_bodies(posts) if body["n"] == "Signup"]
    assert signup[0]["p"] == json.dumps({"plan": "pro"}, separators=(",", ":"))


def test_umami_tracker_pageview_event_route(
    browser: Browser, server: ServerProcess, site_root: Path, site_origin: str
) -> None:
    (site_root / "umami.html").write_text(
        "<!doctype html><title>Home</title>\n"
        '<button id=signup data-umami-event="signup" data-umami-event-plan="pro">Sign up</button>\n'
        "<button id=pricing>Pricing</button>\n"
        f'<script defer src="/umami.js" data-website-id="{WEBSITE_ID}"'
        f' data-host-url="{server.base_url}"></script>\n'
        "<script>\n"
        'document.getElementById("pricing").addEventListener("click", () => {\n'
        '  document.title = "Pricing";\n'
        '  history.pushState({}, "", "/pricing");\n'
        "});\n"
        "</script>\n"
    )
    page, posts = open_page(browser, server, f"{site_origin}/umami.html")
    wait_for_total(server, WEBSITE_ID, 1)
    page.click("#signup")
    wait_for_total(server, WEBSITE_ID, 2)
    page.click("#pricing")
    wait_for_total(server, WEBSITE_ID, 3)
    page.context.close()

    visits = settled(server, WEBSITE_ID)
    assert [visit["url"] for visit in visits] == [
        f"{site_origin}/umami.html",
        f"{site_origin}/umami.html",
        f"{site_origin}/pricing",
    ]
    assert [visit["title"] for visit in visits] == ["Home", "event: signup", "Pricing"]
    assert visits[2]["referrer"] == "/umami.html"
    # The tracker sent footfall's previous response back, which needs the preflight to allow it.
    cache_headers = [request.headers.get("x-umami-cache") for request in posts]
    assert cache_headers[0] is None
    assert cache_headers[1] == visits[0]["id"]
    assert all(cache_headers[1:])

    # A visit without time zone or position shows dashes in those cells of the dashboard.
    context = browser.new_context(user_agent=DESKTOP_USER_AGENT)
    dashboard = context.new_page()
    log_in(dashboard, server)
    dashboard.goto(f"{server.base_url}/?site={WEBSITE_ID}")
    row = dashboard.locator(f'[data-testid="visit-row"][data-id="{visits[2]["id"]}"]')
    expect(row.locator('[data-field="url"]')).to_have_text(f"{site_origin}/pricing")
    expect(row.locator('[data-field="timezone"]')).to_have_text("\u2014")
    expect(row.locator('[data-field="latitude"]')).to_have_text("\u2014")
    context.close()
