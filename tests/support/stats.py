"""Reading a site's stats over HTTP, for the collector tests: one place to change when the
read endpoints change how they are called."""

from __future__ import annotations

from typing import Any

import httpx

from support.browser import DESKTOP_USER_AGENT
from support.server import wait_for

MARKER_BODY = {"timezone": "UTC", "url": "https://marker.example/"}


def read_stats(http: httpx.Client, site: str) -> dict[str, Any]:
    """Return the `/api/stats` document of `site`; `http` sends a token that may read it."""
    response = http.get("/api/stats", params={"site": site, "limit": 100})
    assert response.status_code == 200, response.text
    stats: dict[str, Any] = response.json()
    return stats


def settled_visits(http: httpx.Client, site: str) -> list[dict[str, Any]]:
    """Send a marker visit to `site`, wait until the stats count it, and return the visits
    before it, oldest first.

    The stats lag behind the collectors' responses, so counting a later visit is what shows
    that every earlier one was counted or dropped for good. The marker has a browser's
    User-Agent, so that it counts on a server that drops bots.
    """
    marker = http.post(
        "/api/events",
        json={**MARKER_BODY, "site": site},
        headers={"user-agent": DESKTOP_USER_AGENT},
    )
    assert marker.status_code == 202, marker.text
    marker_id = marker.json()["id"]

    def counted() -> dict[str, Any] | None:
        stats = read_stats(http, site)
        ids = [visit["id"] for visit in stats["latest_visits"]]
        if marker_id not in ids:
            return None
        return stats

    stats = wait_for(counted)
    visits = [visit for visit in stats["latest_visits"] if visit["id"] != marker_id]
    return list(reversed(visits))
