"""Unit tests of the ingest guards' logic: token bucket, bot filter, allow-lists, DNT."""

from __future__ import annotations

import pytest

from footfall.ingest.guards import (
    BotFilter,
    RateLimiter,
    SiteFilter,
    asks_not_to_track,
    retry_after_s,
)

BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
HEADLESS_UA = BROWSER_UA.replace("Chrome/", "HeadlessChrome/")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_the_burst_then_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_s=2.0, burst=3, clock=clock)

    assert [limiter.wait_s("198.51.100.1") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.wait_s("198.51.100.1") == pytest.approx(0.5)

    clock.now += 0.5
    assert limiter.wait_s("198.51.100.1") == 0.0
    assert limiter.wait_s("198.51.100.1") > 0


def test_rejected_attempts_spend_no_tokens() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_s=1.0, burst=1, clock=clock)
    limiter.wait_s("198.51.100.1")
    for _ in range(100):
        assert limiter.wait_s("198.51.100.1") > 0

    clock.now += 1.0
    assert limiter.wait_s("198.51.100.1") == 0.0


def test_each_client_has_its_own_bucket() -> None:
    limiter = RateLimiter(rate_per_s=1.0, burst=2, clock=FakeClock())
    limiter.wait_s("198.51.100.1")
    limiter.wait_s("198.51.100.1")

    assert limiter.wait_s("198.51.100.1") > 0
    assert limiter.wait_s("198.51.100.2") == 0.0


def test_bucket_refills_only_up_to_the_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_s=10.0, burst=2, clock=clock)
    limiter.wait_s("198.51.100.1")
    clock.now += 3600

    assert [limiter.wait_s("198.51.100.1") == 0.0 for _ in range(3)] == [True, True, False]


def test_bucket_map_evicts_least_recent() -> None:
    limiter = RateLimiter(rate_per_s=1.0, burst=1, clock=FakeClock(), max_clients=2)
    limiter.wait_s("a")
    limiter.wait_s("b")
    limiter.wait_s("a")
    limiter.wait_s("c")  # evicts b, the least recently seen

    assert limiter.wait_s("a") > 0
    assert limiter.wait_s("b") == 0.0


@pytest.mark.parametrize(("wait_s", "header"), [(0.01, 1), (1.0, 1), (1.2, 2), (59.5, 60)])
def test_retry_after_is_whole_seconds_rounded_up(wait_s: float, header: int) -> None:
    assert retry_after_s(wait_s) == header


@pytest.mark.parametrize(
    ("user_agent", "reason"),
    [
        ("", "empty_user_agent"),
        ("   ", "empty_user_agent"),
        ("curl/8.5.0", "crawler"),
        ("python-requests/2.32.3", "crawler"),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "crawler"),
        ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "crawler"),
        (HEADLESS_UA, "headless_browser"),
        (BROWSER_UA, None),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", None),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
            None,
        ),
    ],
)
def test_bot_filter_reasons(user_agent: str, reason: str | None) -> None:
    assert BotFilter().reason(user_agent) == reason


def test_bot_filter_cache_consistent() -> None:
    bots = BotFilter()
    assert [bots.reason(ua) for ua in ("curl/8.5.0", BROWSER_UA, "curl/8.5.0")] == [
        "crawler",
        None,
        "crawler",
    ]


def test_site_filter_by_name() -> None:
    sites = SiteFilter(["shop", "blog"], [])
    assert sites.rejection("shop", "") is None
    rejection = sites.rejection("other", "https://shop.example")
    assert rejection is not None and "'other'" in rejection


def test_site_filter_origin_normalized() -> None:
    origins = SiteFilter([], ["https://Shop.example/"])
    assert origins.rejection("any", "https://shop.example") is None
    assert origins.rejection("any", "https://evil.example") is not None
    missing = origins.rejection("any", "")
    assert missing is not None
    assert "without an Origin header" in missing


def test_site_filter_off_by_default() -> None:
    assert not SiteFilter([], []).active


@pytest.mark.parametrize(
    ("dnt", "gpc", "expected"),
    [
        (b"1", b"", True),
        (b"", b"1", True),
        (b" 1 ", b"", True),
        (b"0", b"0", False),
        (b"", b"", False),
    ],
)
def test_do_not_track_and_global_privacy_control(dnt: bytes, gpc: bytes, expected: bool) -> None:
    assert asks_not_to_track(dnt, gpc) is expected
