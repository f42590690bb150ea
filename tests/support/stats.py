"""Reading a site's stats over HTTP, for the collector tests: one place to change when the
read endpoints change how they are called."""

from __future__ import annotations

from typing import Any

import httpx

from support.server import wait_for

MARKER_BODY = {"timezone": "UTC", "url": "https://marker.example/"}
# A desktop browser's User-Agent, so that the marker counts on a server that drops bots.
BROWSER_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/156.0.0.0 Safari/537.36"
)


def read_stats(base_url: str, site: str) -> dict[str, Any]:
    """Return the `/api/stats` document of `site`."""
    response = httpx.get(f"{base_url}/api/stats", params={"site": site, "limit": 100}, timeout=10)
    assert response.status_code == 200, response.text
    stats: dict[str, Any] = response.json()
    return stats


def settled_visits(base_url: str, site: str) -> list[dict[str, Any]]:
    """Send a marker visit to `site`, wait until the stats count it, and return the visits
    before it, oldest first.

    The stats lag behind the collectors' responses, so counting a later visit is what
    shows that every earlier one was counted or dropped for good.
    """
    marker = httpx.post(
        f"{base_url}/api/events",
        json={**MARKER_BODY, "site": site},
        headers={"user-agent": BROWSER_USER_AGENT},
        timeout=10,
    )
    assert marker.status_code == 202, marker.text
    marker_id = marker.json()["id"]

    def counted() -> dict[str, Any] | None:
        stats = read_stats(base_url, site)
        ids = [visit["id"] for visit in stats["latest_visits"]]
        return stats if marker_id in ids else None

    stats = wait_for(counted)
    visits = [visit for visit in stats["latest_visits"] if visit["id"] != marker_id]
    assert stats["total_visits"] == len(visits) + 1
    return list(reversed(visits))
