"""The Plausible and Umami collectors through a real `footfall serve`, on both deployments."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.browser import DESKTOP_USER_AGENT
from support.server import ServerProcess, StartServer, free_port
from support.stats import settled_visits

SHOP = "shop.example"
WEBSITE_ID = "3f1c9a52-7a0e-4c1b-9d3e-5b2f8c6d1e40"
PAGEVIEW = {"n": "pageview", "u": "https://shop.example/pricing", "d": SHOP, "r": None}
UMAMI_PAGEVIEW = {
    "type": "event",
    "payload": {
        "website": WEBSITE_ID,
        "hostname": SHOP,
        "url": "/pricing?plan=pro",
        "referrer": "https://search.example/?q=shop",
        "title": "Pricing%20%26%20plans",
        "language": "en-US",
        "screen": "1920x1080",
    },
}
TEXT = {"content-type": "text/plain"}


def post_json(http: httpx.Client, path: str, body: Any, **headers: str) -> httpx.Response:
    return http.post(
        path, content=json.dumps(body), headers={"content-type": "application/json", **headers}
    )


def test_plausible_short_keys_pageview(client: httpx.Client) -> None:
    response = client.post("/api/event", content=json.dumps(PAGEVIEW), headers=TEXT)

    assert response.status_code == 202
    assert response.text == "ok"
    [visit] = settled_visits(client, SHOP)
    assert visit["url"] == "https://shop.example/pricing"
    assert visit["title"] is None
    assert visit["referrer"] is None
    assert visit["timezone"] is None
    assert visit["latitude"] is None
    assert visit["ip"] == "127.0.0.1"


def test_plausible_long_keys_custom_event(client: httpx.Client) -> None:
    body = {
        "name": "Signup",
        "url": "https://shop.example/join",
        "domain": "Shop.Example",
        "referrer": "https://news.example/",
        "props": {"plan": "pro"},
        "revenue": {"amount": "9.99", "currency": "EUR"},
        "interactive": False,
    }
    response = post_json(client, "/api/event", body)

    assert response.status_code == 202
    [visit] = settled_visits(client, SHOP)
    assert visit["title"] == "event: Signup"
    assert visit["url"] == "https://shop.example/join"
    assert visit["referrer"] == "https://news.example/"


def test_plausible_props_as_string(client: httpx.Client) -> None:
    # The older plausible-tracker sends every short key, props JSON-encoded, h as 0 or 1.
    body = {**PAGEVIEW, "n": "Download", "p": json.dumps({"file": "a.pdf"}), "w": 1280, "h": 0}
    response = client.post("/api/event", content=json.dumps(body), headers=TEXT)

    assert response.status_code == 202
    [visit] = settled_visits(client, SHOP)
    assert visit["title"] == "event: Download"


def test_plausible_newer_tracker_keys(client: httpx.Client) -> None:
    body = {**PAGEVIEW, "p": {"a": "1"}, "v": 36, "i": False, "h": 1, "$": {"amount": 1}}
    response = client.post("/api/event", content=json.dumps(body), headers=TEXT)

    assert response.status_code == 202
    assert len(settled_visits(client, SHOP)) == 1


def test_plausible_engagement_not_stored(client: httpx.Client) -> None:
    engagement = {**PAGEVIEW, "n": "engagement", "sd": 80, "e": 4200, "v": 36}
    responses = [
        client.post("/api/event", content=json.dumps(PAGEVIEW), headers=TEXT),
        client.post("/api/event", content=json.dumps(engagement), headers=TEXT),
    ]

    assert [response.status_code for response in responses] == [202, 202]
    [visit] = settled_visits(client, SHOP)
    assert visit["title"] is None


def test_plausible_domain_list_first(client: httpx.Client) -> None:
    body = {**PAGEVIEW, "d": "shop.example, rollup.example"}
    assert client.post("/api/event", content=json.dumps(body), headers=TEXT).status_code == 202

    assert len(settled_visits(client, SHOP)) == 1
    assert settled_visits(client, "rollup.example") == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"n": "pageview", "d": SHOP}, "url: missing"),
        ({"n": "pageview", "u": "", "d": SHOP}, "url: missing"),
        ({"u": "https://shop.example/", "d": SHOP}, "name: missing"),
        ({"n": "pageview", "u": "https://shop.example/"}, "domain: missing"),
        ({**PAGEVIEW, "u": 42}, "url: must be a string, got a number"),
        ({**PAGEVIEW, "d": "shop example"}, "domain: 'shop example' is not a valid"),
        ({**PAGEVIEW, "p": 5}, "props: must be an object, got a number"),
        ({**PAGEVIEW, "p": "{not json"}, "props: invalid JSON"),
        ({**PAGEVIEW, "p": "[1, 2]"}, "props: the string must encode a JSON object"),
        ({**PAGEVIEW, "name": "pageview"}, "name: given twice"),
        ([PAGEVIEW], "body: must be a JSON object, got an array"),
        ("pageview", "body: must be a JSON object, got a string"),
    ],
)
def test_plausible_invalid_body_400(client: httpx.Client, body: Any, reason: str) -> None:
    response = client.post("/api/event", content=json.dumps(body), headers=TEXT)

    assert response.status_code == 400
    assert reason in response.json()["detail"]


def test_plausible_malformed_bodies_never_500(client: httpx.Client) -> None:
    bodies = [b"", b"{", b"\xff\xfe", b"[" * 5000 + b"]" * 5000, b"null", b"1e999"]
    statuses = [
        client.post("/api/event", content=body, headers=TEXT).status_code for body in bodies
    ]

    assert statuses == [400, 400, 400, 400, 400, 400]
    assert settled_visits(client, SHOP) == []


def test_collectors_other_media_type_415(client: httpx.Client) -> None:
    for path in ("/api/event", "/api/send"):
        response = client.post(path, content=b"n=pageview", headers={"content-type": "text/csv"})

        assert response.status_code == 415
        assert "send application/json or text/plain" in response.json()["detail"]


def test_umami_pageview_200_text(client: httpx.Client) -> None:
    origin = "https://shop.example"
    response = post_json(client, "/api/send", UMAMI_PAGEVIEW, origin=origin)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    [visit] = settled_visits(client, WEBSITE_ID)
    assert response.text == visit["id"]
    assert visit["url"] == "https://shop.example/pricing?plan=pro"
    assert visit["title"] == "Pricing & plans"
    assert visit["referrer"] == "https://search.example/?q=shop"
    assert visit["timezone"] is None
    assert visit["site"] == WEBSITE_ID


def test_umami_without_origin_scheme_relative(client: httpx.Client) -> None:
    response = post_json(client, "/api/send", UMAMI_PAGEVIEW)

    assert response.status_code == 200
    [visit] = settled_visits(client, WEBSITE_ID)
    assert visit["url"] == "//shop.example/pricing?plan=pro"


@pytest.mark.parametrize(
    ("url", "hostname", "stored"),
    [
        (
            "/go?to=https://other.example/",
            SHOP,
            "https://shop.example/go?to=https://other.example/",
        ),
        ("https://shop.example/full", SHOP, "https://shop.example/full"),
        ("docs", SHOP, "https://shop.example/docs"),
        ("/no-host", None, "/no-host"),
    ],
)
def test_umami_url_completion(
    client: httpx.Client, url: str, hostname: str | None, stored: str
) -> None:
    payload = {"website": WEBSITE_ID, "url": url, "hostname": hostname}
    response = post_json(
        client, "/api/send", {"type": "event", "payload": payload}, origin="https://shop.example"
    )

    assert response.status_code == 200
    [visit] = settled_visits(client, WEBSITE_ID)
    assert visit["url"] == stored


def test_umami_custom_event_and_cache_header(client: httpx.Client) -> None:
    first = post_json(client, "/api/send", UMAMI_PAGEVIEW)
    event = {"type": "event", "payload": {**UMAMI_PAGEVIEW["payload"], "name": "signup"}}
    event["payload"]["data"] = {"plan": "pro", "seats": 3}
    second = post_json(client, "/api/send", event, **{"x-umami-cache": first.text})

    assert [first.status_code, second.status_code] == [200, 200]
    visits = settled_visits(client, WEBSITE_ID)
    assert [visit["title"] for visit in visits] == ["Pricing & plans", "event: signup"]


def test_umami_identify_not_stored(client: httpx.Client) -> None:
    identify = {"type": "identify", "payload": {**UMAMI_PAGEVIEW["payload"], "data": {"a": 1}}}
    response = post_json(client, "/api/send", identify)

    assert response.status_code == 200
    assert len(response.text) == 32
    assert settled_visits(client, WEBSITE_ID) == []


def test_umami_batch_stores_each(client: httpx.Client) -> None:
    event = {"type": "event", "payload": {**UMAMI_PAGEVIEW["payload"], "name": "signup"}}
    identify = {"type": "identify", "payload": {"website": WEBSITE_ID}}
    response = post_json(client, "/api/batch", [UMAMI_PAGEVIEW, identify, event])

    assert response.status_code == 200
    visits = settled_visits(client, WEBSITE_ID)
    assert [visit["title"] for visit in visits] == ["Pricing & plans", "event: signup"]


def test_umami_batch_invalid_item_stores_none(client: httpx.Client) -> None:
    broken = {"type": "event", "payload": {"website": WEBSITE_ID}}
    response = post_json(client, "/api/batch", [UMAMI_PAGEVIEW, broken])

    assert response.status_code == 400
    assert response.json()["detail"].startswith("[1].payload.url: missing")
    assert settled_visits(client, WEBSITE_ID) == []


def test_umami_old_collect_path(client: httpx.Client) -> None:
    pageview = {"type": "pageview", "payload": {**UMAMI_PAGEVIEW["payload"]}}
    event = {"type": "event", "payload": {**UMAMI_PAGEVIEW["payload"], "event_name": "click"}}
    statuses = [post_json(client, "/api/collect", body).status_code for body in (pageview, event)]

    assert statuses == [200, 200]
    visits = settled_visits(client, WEBSITE_ID)
    assert [visit["title"] for visit in visits] == ["Pricing & plans", "event: click"]


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        (
            "/api/send",
            {"type": "event", "payload": {"website": WEBSITE_ID}},
            "payload.url: missing",
        ),
        ("/api/send", {"type": "event", "payload": {"url": "/"}}, "payload.website: missing"),
        ("/api/send", {"type": "click", "payload": {}}, "type: 'click' is not one of"),
        ("/api/send", {"payload": {}}, "type: null is not one of"),
        ("/api/send", {"type": "event", "payload": "x"}, "payload: must be an object"),
        ("/api/send", {"type": "event", "payload": {"website": "a b", "url": "/"}}, "website"),
        (
            "/api/send",
            {"type": "event", "payload": {"website": "w" * 65, "url": "/"}},
            "--umami-site",
        ),
        (
            "/api/send",
            {"type": "event", "payload": {"website": WEBSITE_ID, "url": "/", "data": [1]}},
            "payload.data: must be an object, got an array",
        ),
        ("/api/send", [UMAMI_PAGEVIEW], "body: must be a JSON object, got an array"),
        ("/api/batch", UMAMI_PAGEVIEW, "body: must be a JSON array"),
        ("/api/batch", [], "empty array"),
        ("/api/collect", {"type": "event"}, "payload: must be an object, got null"),
    ],
)
def test_umami_invalid_body_400(client: httpx.Client, path: str, body: Any, reason: str) -> None:
    response = post_json(client, path, body)

    assert response.status_code == 400
    assert reason in response.json()["detail"]


def test_umami_malformed_bodies_never_500(client: httpx.Client) -> None:
    bodies = [b"", b"{", b"\xff", b"[" * 5000 + b"]" * 5000, b"true"]
    for path in ("/api/send", "/api/batch", "/api/collect"):
        statuses = [client.post(path, content=body, headers=TEXT).status_code for body in bodies]

        assert statuses == [400, 400, 400, 400, 400], path


@pytest.mark.parametrize("path", ["/api/event", "/api/send", "/api/batch", "/api/collect"])
def test_collector_preflight_allows_umami_cache(client: httpx.Client, path: str) -> None:
    response = client.options(
        path,
        headers={
            "origin": "https://shop.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type,x-umami-cache",
        },
    )

    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = [name.strip() for name in response.headers["access-control-allow-headers"].split(",")]
    assert "content-type" in allowed
    assert "x-umami-cache" in allowed


def test_collector_cors_on_success_and_errors(client: httpx.Client) -> None:
    origin = {"origin": "https://shop.example"}
    responses = [
        client.post("/api/event", content=json.dumps(PAGEVIEW), headers={**TEXT, **origin}),
        client.post("/api/event", content=b"{}", headers={**TEXT, **origin}),
        client.post("/api/event", content=b"{}", headers={"content-type": "text/csv", **origin}),
        post_json(client, "/api/send", UMAMI_PAGEVIEW, **origin),
        post_json(client, "/api/send", {"type": "event"}, **origin),
        client.post("/api/batch", content=b"[", headers={**TEXT, **origin}),
    ]

    assert [response.status_code for response in responses] == [202, 400, 415, 200, 400, 400]
    for response in responses:
        assert response.headers["access-control-allow-origin"] == "*"


@pytest.fixture
def mapped_server(start_server: StartServer) -> ServerProcess:
    """A server with extra collector paths and a named Umami website id."""
    args = ["--plausible-path", "/p/e", "--umami-path", "/u/s"]
    return start_server([*args, "--umami-site", f"{WEBSITE_ID}=shop"])


def test_extra_paths_behave_identically(mapped_server: ServerProcess) -> None:
    with mapped_server.client(timeout=10) as http:
        answers = []
        for path in ("/api/event", "/p/e"):
            answers.append(http.post(path, content=json.dumps(PAGEVIEW), headers=TEXT))
            answers.append(http.post(path, content=b"{}", headers=TEXT))
            answers.append(http.options(path, headers={"access-control-request-method": "POST"}))
        for path in ("/api/send", "/u/s"):
            answers.append(post_json(http, path, UMAMI_PAGEVIEW, origin="https://shop.example"))
            answers.append(post_json(http, path, {"type": "event"}))
            answers.append(http.options(path, headers={"access-control-request-method": "POST"}))

        plausible = settled_visits(http, SHOP)
        umami = settled_visits(http, "shop")
        unmapped = settled_visits(http, WEBSITE_ID)

    assert [visit["url"] for visit in plausible] == ["https://shop.example/pricing"] * 2
    assert [visit["url"] for visit in umami] == ["https://shop.example/pricing?plan=pro"] * 2
    assert unmapped == []
    statuses = [answer.status_code for answer in answers]
    assert statuses == [202, 400, 204, 202, 400, 204, 200, 400, 204, 200, 400, 204]
    assert answers[1].json() == answers[4].json()
    assert answers[7].json() == answers[10].json()
    for answer in answers:
        assert answer.headers["access-control-allow-origin"] == "*"
    allowed = [answer.headers["access-control-allow-headers"] for answer in answers[2::3]]
    assert allowed == [allowed[0]] * 4


def test_extra_paths_in_openapi(mapped_server: ServerProcess) -> None:
    document = httpx.get(f"{mapped_server.base_url}/openapi.json", timeout=10).json()

    for path in ("/api/event", "/p/e", "/api/send", "/api/batch", "/api/collect", "/u/s"):
        assert "post" in document["paths"][path], path
    assert "202" in document["paths"]["/p/e"]["post"]["responses"]
    assert "200" in document["paths"]["/u/s"]["post"]["responses"]


@pytest.fixture
def guarded_server(start_server: StartServer, monkeypatch: pytest.MonkeyPatch) -> ServerProcess:
    """A server with the default bot filter, a small rate limit and truncated IPs."""
    monkeypatch.setenv("FOOTFALL_KEEP_BOTS", "0")
    return start_server(["--rate-limit", "0.001", "--rate-burst", "5", "--ip-mode", "truncated"])


def test_collectors_apply_the_guards(guarded_server: ServerProcess) -> None:
    browser = {"user-agent": DESKTOP_USER_AGENT}
    headless = {"user-agent": DESKTOP_USER_AGENT.replace("Chrome/", "HeadlessChrome/")}
    umami_page = {"type": "event", "payload": {**UMAMI_PAGEVIEW["payload"], "website": SHOP}}
    with guarded_server.client(timeout=10) as http:
        # The bot gets the success status, so it learns nothing, but its visits are not stored.
        bot_answers = [
            http.post("/api/event", content=json.dumps(PAGEVIEW), headers={**TEXT, **headless}),
            post_json(http, "/api/send", umami_page, **headless),
        ]
        browser_answers = [
            http.post("/api/event", content=json.dumps(PAGEVIEW), headers={**TEXT, **browser}),
            post_json(http, "/api/send", umami_page, **browser),
        ]
        # The marker that settled_visits sends spends the burst's last visit, so these two
        # find it empty.
        visits = settled_visits(http, SHOP)
        limited = [
            http.post("/api/event", content=json.dumps(PAGEVIEW), headers={**TEXT, **browser}),
            post_json(http, "/api/send", umami_page, **browser),
        ]

    assert [answer.status_code for answer in bot_answers] == [202, 200]
    assert [answer.status_code for answer in browser_answers] == [202, 200]
    assert [visit["ip"] for visit in visits] == ["127.0.0.0/24", "127.0.0.0/24"]
    assert [visit["url"] for visit in visits] == [
        "https://shop.example/pricing",
        "//shop.example/pricing?plan=pro",
    ]
    for answer in limited:
        assert answer.status_code == 429
        assert answer.headers["retry-after"]
        assert answer.headers["access-control-allow-origin"] == "*"
        assert "too many visits" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--plausible-path", "p/e"],
            "invalid --plausible-path 'p/e': use a path starting with '/'",
        ),
        (["--umami-path", "/u?x=1"], "invalid --umami-path '/u?x=1'"),
        (["--plausible-path", "/api/stats"], "footfall already serves /api/stats there"),
        (["--umami-path", "/api/event"], "footfall already serves /api/event there"),
        (["--umami-path", "/static/x.js"], "footfall already serves /static/x.js there"),
        (["--plausible-path", "/x", "--umami-path", "/x"], "invalid --umami-path '/x'"),
        (["--umami-site", "abc"], "invalid --umami-site 'abc': use WEBSITE_ID=SITE"),
        (["--umami-site", "abc=a b"], "invalid --umami-site 'abc=a b'"),
        (["--umami-site", "a=x", "--umami-site", "a=y"], "already mapped to site 'x'"),
    ],
)
def test_invalid_collector_options_rejected(tmp_path: Path, args: list[str], message: str) -> None:
    command = [sys.executable, "-m", "footfall", "serve", "--db", str(tmp_path / "f.db")]
    command += ["--port", str(free_port()), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    assert result.returncode == 2
    assert message in result.stderr
