"""The ingest guards and the privacy modes through a real server, on both deployments."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support.reads import all_events, assert_stats_equal_history, settled
from support.server import StartServer, wait_for

BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
VISIT = {"timezone": "Europe/Berlin", "url": "https://shop.example/"}
# One token per 100 s after the burst: within a test, exactly the burst gets through.
SLOW_RATE = ["--rate-limit", "0.01", "--rate-burst", "5"]


@pytest.fixture
def guarded(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[httpx.Client]:
    """A server with the bot filter on and the arguments given by the test's `args` mark."""
    monkeypatch.setenv("FOOTFALL_KEEP_BOTS", "0")
    marker = request.node.get_closest_marker("args")
    server = start_server(list(marker.args[0]) if marker else [])
    with server.client(headers={"user-agent": BROWSER_UA}) as http:
        yield http


def post(http: httpx.Client, body: dict[str, Any] | None = None, **headers: str) -> httpx.Response:
    """POST a visit; `x_forwarded_for="..."` sends the header X-Forwarded-For."""
    sent = {name.replace("_", "-"): value for name, value in headers.items()}
    return http.post("/api/events", json=body or VISIT, headers=sent)


@pytest.mark.args(["--trusted-proxy", "127.0.0.0/8", *SLOW_RATE])
def test_rate_limit_is_per_ip(guarded: httpx.Client) -> None:
    flood = [post(guarded, x_forwarded_for="198.51.100.1") for _ in range(12)]

    assert [response.status_code for response in flood] == [202] * 5 + [429] * 7
    rejected = flood[-1]
    assert int(rejected.headers["retry-after"]) >= 1
    assert "too many visits" in rejected.json()["detail"]
    assert rejected.headers["access-control-allow-origin"] == "*"

    assert [post(guarded, x_forwarded_for="198.51.100.2").status_code for _ in range(5)] == [
        202
    ] * 5
    stats = settled(guarded, 10)
    assert {(row["ip"], row["visits"]) for row in stats["top_visitors"]} == {
        ("198.51.100.1", 5),
        ("198.51.100.2", 5),
    }


@pytest.mark.args(SLOW_RATE)
def test_rate_limit_ignores_forged_headers(guarded: httpx.Client) -> None:
    statuses = [post(guarded, x_forwarded_for=f"203.0.113.{n}").status_code for n in range(1, 13)]

    assert statuses == [202] * 5 + [429] * 7
    stats = settled(guarded, 5)
    assert [(row["ip"], row["visits"]) for row in stats["top_visitors"]] == [("127.0.0.1", 5)]


BOTS = {
    "crawler": [
        "curl/8.5.0",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    ],
    "headless_browser": [BROWSER_UA.replace("Chrome/", "HeadlessChrome/")],
    "empty_user_agent": [""],
}


def test_bots_not_counted(guarded: httpx.Client) -> None:
    for user_agents in BOTS.values():
        for user_agent in user_agents:
            response = post(guarded, user_agent=user_agent)
            assert response.status_code == 202, user_agent
            assert len(response.json()["id"]) == 32
    accepted = post(guarded)
    assert accepted.status_code == 202

    stats = settled(guarded, 1)
    assert [visit["id"] for visit in stats["latest_visits"]] == [accepted.json()["id"]]

    def ignored_counts() -> dict[str, float] | None:
        counts = _metric_values(guarded, "footfall_events_ignored_total")
        expected = {reason: float(len(agents)) for reason, agents in BOTS.items()}
        return counts if all(counts.get(r) == n for r, n in expected.items()) else None

    counts = wait_for(ignored_counts)
    assert counts["do_not_track"] == 0


@pytest.mark.args(["--respect-dnt"])
def test_dnt_and_gpc_not_stored(guarded: httpx.Client) -> None:
    assert post(guarded, dnt="1").status_code == 202
    assert post(guarded, sec_gpc="1").status_code == 202
    kept = [post(guarded, dnt="0"), post(guarded)]

    stats = settled(guarded, 2)
    assert {visit["id"] for visit in stats["latest_visits"]} == {r.json()["id"] for r in kept}
    wait_for(lambda: _metric_values(guarded, "footfall_events_ignored_total")["do_not_track"] == 2)


@pytest.mark.args(["--allowed-site", "shop", "--allowed-site", "blog"])
def test_other_sites_get_403(guarded: httpx.Client) -> None:
    rejected = post(guarded, {**VISIT, "site": "elsewhere"})
    assert rejected.status_code == 403
    assert "'elsewhere'" in rejected.json()["detail"]
    assert rejected.headers["access-control-allow-origin"] == "*"
    assert post(guarded, {**VISIT, "site": "shop"}).status_code == 202

    settled(guarded, 1, site="shop")
    assert all_events(guarded, "elsewhere") == []
    wait_for(lambda: _metric_values(guarded, "footfall_events_rejected_total")["forbidden_site"])


@pytest.mark.args(["--allowed-origin", "https://shop.example"])
def test_other_origins_get_403(guarded: httpx.Client) -> None:
    assert post(guarded, origin="https://evil.example").status_code == 403
    assert post(guarded).status_code == 403  # no Origin header at all
    assert post(guarded, origin="https://shop.example").status_code == 202

    settled(guarded, 1)


MODES = [
    ("full", "keep"),
    ("truncated", "hash"),
    ("hashed", "drop"),
]


@pytest.mark.parametrize(("ip_mode", "email_mode"), MODES)
def test_privacy_modes_match_recount(
    start_server: StartServer, ip_mode: str, email_mode: str
) -> None:
    args = ["--trusted-proxy", "127.0.0.0/8", "--ip-mode", ip_mode, "--email-mode", email_mode]
    visitors = [
        ("203.0.113.7", "ann@example.com", 3),
        ("203.0.113.8", "bob@example.com", 2),
        ("2001:db8:1::5", "Ann@Example.com", 1),
        ("198.51.100.1", None, 1),
    ]
    with start_server(args).client() as http:
        for ip, email, count in visitors:
            for _ in range(count):
                body = {**VISIT, "email": email} if email else VISIT
                response = post(http, body, x_forwarded_for=ip)
                assert response.status_code == 202

        settled(http, 7)
        assert_stats_equal_history(http)
        events = all_events(http)
        stats_text = http.get("/api/stats").text
        events_text = http.get("/api/events", params={"limit": 1000}).text

    ips = {event["ip"] for event in events}
    emails = {event["email"] for event in events}
    if ip_mode == "full":
        assert ips == {"203.0.113.7", "203.0.113.8", "2001:db8:1::5", "198.51.100.1"}
    elif ip_mode == "truncated":
        assert ips == {"203.0.113.0/24", "2001:db8:1::/48", "198.51.100.0/24"}
    else:
        # One hash per address within the day, none of them showing the address.
        assert len(ips) == 4 and all(ip.startswith("h:") for ip in ips)
    if email_mode == "keep":
        assert emails == {"ann@example.com", "bob@example.com", "Ann@Example.com", None}
    elif email_mode == "hash":
        # The address is lower-cased first, so Ann@Example.com is ann@example.com.
        assert len(emails - {None}) == 2 and all(e.startswith("h:") for e in emails - {None})
    else:
        assert emails == {None}
    if ip_mode != "full":
        for text in (stats_text, events_text):
            assert "203.0.113.7" not in text
            assert "2001:db8:1::5" not in text
    if email_mode != "keep":
        for text in (stats_text, events_text):
            assert "@example.com" not in text.lower()


def _metric_values(http: httpx.Client, name: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in http.get("/metrics").text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line.rsplit(" ", 1)
            reason = labels.split('reason="', 1)[1].split('"', 1)[0]
            values[reason] = float(value)
    return values
