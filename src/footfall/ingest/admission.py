"""From validated visit fields to an appended visit, shared by every collector endpoint.

Whatever shape a visit arrives in (footfall's own `/api/events` or another tracker's
collector), it passes the same steps here, in this order:

1. the client IP is resolved (trusted proxies only);
2. the rate limit for that IP (429);
3. the allowed sites and origins (403);
4. bots and Do Not Track: 202 as if accepted, not stored, counted by reason;
5. the IP and e-mail modes;
6. the append to the event log (503 when it is unavailable).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from footfall.errors import BackendUnavailable
from footfall.ingest.client_ip import ClientIpResolver
from footfall.ingest.guards import (
    BotFilter,
    RateLimiter,
    SiteFilter,
    asks_not_to_track,
    retry_after_s,
)
from footfall.ingest.validation import VisitInput
from footfall.log.base import EventLog
from footfall.metrics import IngestCounters
from footfall.model import Visit
from footfall.privacy import Pseudonymizer

logger = logging.getLogger(__name__)

RETRY_AFTER_S = 1

Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Accepted:
    """The visit is in the event log under `id`."""

    id: str


@dataclass(frozen=True, slots=True)
class Ignored:
    """A visit that gets the accepted response but is not stored (a bot, or Do Not Track)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """A rejected visit: the status, the metrics reason and the message for the client."""

    status: int
    reason: str
    detail: str
    headers: Headers = field(default_factory=list)


Outcome = Accepted | Ignored | Rejected


@dataclass(frozen=True, slots=True)
class IngestPolicy:
    """The guards an operator configures; `rate_limiter=None` turns the rate limit off."""

    rate_limiter: RateLimiter | None = None
    bots: BotFilter | None = field(default_factory=BotFilter)
    sites: SiteFilter = field(default_factory=lambda: SiteFilter((), ()))
    respect_dnt: bool = False


class Admission:
    """Runs every visit through the guards and the privacy modes, then appends it."""

    def __init__(
        self,
        log: EventLog,
        resolver: ClientIpResolver,
        counters: IngestCounters,
        pseudonymizer: Pseudonymizer,
        policy: IngestPolicy,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self._log = log
        self._resolver = resolver
        self._counters = counters
        self._pseudonymizer = pseudonymizer
        self._policy = policy
        self._clock_ms = clock_ms or _wall_clock_ms

    def count_rejection(self, reason: str) -> None:
        """Count a visit that a collector rejected before admission (a malformed body)."""
        self._counters.rejected[reason] += 1

    async def admit(self, peer: str | None, headers: Headers, fields: VisitInput) -> Outcome:
        """Decide about one visit and append it when it is to be kept."""
        outcome = await self._decide(peer, headers, fields)
        if isinstance(outcome, Accepted):
            self._counters.accepted += 1
        elif isinstance(outcome, Ignored):
            self._counters.ignored[outcome.reason] += 1
        else:
            self._counters.rejected[outcome.reason] += 1
        return outcome

    async def _decide(self, peer: str | None, headers: Headers, fields: VisitInput) -> Outcome:
        policy = self._policy
        ip = self._resolver.resolve(peer, headers)
        if policy.rate_limiter is not None:
            wait_s = policy.rate_limiter.wait_s(ip)
            if wait_s:
                retry = retry_after_s(wait_s)
                return Rejected(
                    429,
                    "rate_limited",
                    f"too many visits from this address: retry after {retry} s",
                    [(b"retry-after", str(retry).encode())],
                )
        if policy.sites.active:
            rejection = policy.sites.rejection(
                fields.site, header(headers, b"origin").decode("latin-1")
            )
            if rejection is not None:
                return Rejected(403, "forbidden_site", rejection)
        if policy.bots is not None:
            reason = policy.bots.reason(header(headers, b"user-agent").decode("latin-1"))
            if reason is not None:
                return Ignored(reason)
        if policy.respect_dnt and asks_not_to_track(
            header(headers, b"dnt"), header(headers, b"sec-gpc")
        ):
            return Ignored("do_not_track")

        try:
            stored_ip, email = await self._pseudonymizer.apply(ip, fields.email)
            visit = Visit(
                id=fields.event_id or os.urandom(16).hex(),
                site=fields.site,
                received_at_ms=self._clock_ms(),
                ip=stored_ip,
                timezone=fields.timezone,
                email=email,
                latitude=fields.latitude,
                longitude=fields.longitude,
                url=fields.url,
                referrer=fields.referrer,
                title=fields.title,
            )
            await self._log.append(visit, deduplicate=fields.event_id is not None)
        except BackendUnavailable as error:
            logger.warning("rejected a visit with 503, the client may retry: %s", error)
            return Rejected(
                503,
                "unavailable",
                "the event log is unavailable, retry later",
                [(b"retry-after", str(RETRY_AFTER_S).encode())],
            )
        return Accepted(visit.id)


def header(headers: Headers, name: bytes) -> bytes:
    """Return the first value of a header (names are lower case in ASGI), or b''."""
    for key, value in headers:
        if key == name:
            return value
    return b""


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000
