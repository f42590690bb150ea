"""The ingest endpoint's defences: rate limit, bot filter, allowed sites and Do Not Track.

All of them run after the client IP is resolved (`client_ip`), so a forged
`X-Forwarded-For` from an untrusted peer neither dodges the rate limit nor spends another
visitor's budget: such a peer is limited as itself.
"""

from __future__ import annotations

import functools
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from crawlerdetect import CrawlerDetect

DEFAULT_RATE_PER_S = 10.0
DEFAULT_BURST = 50
MAX_TRACKED_CLIENTS = 100_000
"""Buckets kept in memory. The least recently seen client is forgotten first, which only
ever gives it a full bucket again."""


class RateLimiter:
    """A token bucket per client IP: `burst` visits at once, then `rate_per_s` on average.

    Buckets live in this process's memory. With several API processes behind a load balancer
    that spreads one client over them, the client's budget is up to one bucket per process.
    That still stops floods, and it costs no Redis round trip per visit.
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = MAX_TRACKED_CLIENTS,
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def wait_s(self, client: str) -> float:
        """Take one token for `client`; return 0 when allowed, else seconds until a token."""
        now = self._clock()
        tokens, updated = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - updated) * self.rate_per_s)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[client] = (tokens, now)
        if len(self._buckets) > self._max_clients:
            self._buckets.popitem(last=False)
        return 0.0 if allowed else (1.0 - tokens) / self.rate_per_s


def retry_after_s(wait_s: float) -> int:
    """Return a Retry-After value in whole seconds, at least 1."""
    return max(1, math.ceil(wait_s))


class BotFilter:
    """Tells crawlers, headless browsers and scripts from visitors by their User-Agent.

    The patterns come from `crawlerdetect`, a maintained port of the CrawlerDetect list
    (search engines, headless browsers, HTTP libraries such as curl). Results are cached per
    User-Agent string, since a site's traffic repeats a few thousand of them.
    """

    def __init__(self) -> None:
        self._detector = CrawlerDetect()
        self.reason = functools.lru_cache(maxsize=8192)(self._reason)

    def _reason(self, user_agent: str) -> str | None:
        if not user_agent.strip():
            return "empty_user_agent"
        if not self._detector.isCrawler(user_agent):
            return None
        # getMatches() returns the matched pattern text, such as "Headless" or "curl".
        matched = str(self._detector.getMatches() or "").lower()
        return "headless_browser" if "headless" in matched else "crawler"


IGNORE_REASONS = ("empty_user_agent", "headless_browser", "crawler", "do_not_track")
"""Why a visit got 202 but was not stored: the `reason` label of footfall_events_ignored."""


class SiteFilter:
    """The optional allow-lists: sites by name (`--allowed-site`), pages by `Origin`.

    With `--allowed-origin` set, a visit must carry an `Origin` header in the list. Browsers
    send one with every POST, trackers included; a server-side sender should be allowed by
    site name instead.
    """

    def __init__(self, sites: Iterable[str], origins: Iterable[str]) -> None:
        self.sites = frozenset(sites)
        self.origins = frozenset(origin.rstrip("/").lower() for origin in origins)

    @property
    def active(self) -> bool:
        return bool(self.sites or self.origins)

    def rejection(self, site: str, origin: str) -> str | None:
        """Return why a visit is rejected, or None when the lists allow it."""
        if self.sites and site not in self.sites:
            return f"site {site[:64]!r} is not accepted by this server"
        if self.origins and not origin:
            return "a visit without an Origin header is not accepted by this server"
        if self.origins and origin.rstrip("/").lower() not in self.origins:
            return f"origin {origin[:100]!r} is not accepted by this server"
        return None


def asks_not_to_track(dnt: bytes, gpc: bytes) -> bool:
    """Return True for `DNT: 1` or `Sec-GPC: 1`."""
    return dnt.strip() == b"1" or gpc.strip() == b"1"
