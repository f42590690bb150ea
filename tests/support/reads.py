"""Reading a running server's stats and history, and checking one against the other."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx

from support.server import wait_for


def all_events(http: httpx.Client, site: str = "default") -> list[dict[str, Any]]:
    """Return every stored visit of a site from `/api/events`, newest first."""
    events: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"site": site, "limit": 1000}
        if cursor:
            params["cursor"] = cursor
        response = http.get("/api/events", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        events += page["events"]
        cursor = page["next_cursor"]
        if cursor is None:
            return events


def settled(http: httpx.Client, total: int, site: str = "default") -> dict[str, Any]:
    """Wait until both the stats and the history of a site hold `total` visits.

    In the distributed deployment the stats and the event store are filled by two consumer
    groups, so either may be behind the other for a moment.
    """

    def probe() -> dict[str, Any] | None:
        stats: dict[str, Any] = http.get("/api/stats", params={"site": site}).json()
        if stats["total_visits"] != total or len(all_events(http, site)) != total:
            return None
        return stats

    return wait_for(probe, timeout_s=20)


def assert_stats_equal_history(http: httpx.Client, site: str = "default") -> None:
    """Check that `/api/stats` equals a recount of what `/api/events` holds."""
    stats = http.get("/api/stats", params={"site": site}).json()
    events = all_events(http, site)
    counts = Counter(event["ip"] for event in events)

    assert stats["total_visits"] == len(events)
    assert stats["distinct_visitors"] == len(counts)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    assert [(row["ip"], row["visits"]) for row in stats["top_visitors"]] == ranked[:100]
    assert [visit["id"] for visit in stats["latest_visits"]] == [e["id"] for e in events[:100]]
