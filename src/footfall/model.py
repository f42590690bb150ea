"""The visit event and the stats read model, shared by every backend."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

LATEST_VISITS_CAPACITY = 100
"""How many latest visits each site keeps, which is also the maximum `limit` of `/api/stats`."""


VISIT_COLUMNS = (
    "id, site, received_at_ms, ip, timezone, email, latitude, longitude, url, referrer, title"
)
"""The columns a SQL backend stores a visit in, in the order of `Visit.values()`."""


@dataclass(frozen=True, slots=True)
class Visit:
    """One page visit: a validated, enriched event as the log and the stores carry it."""

    id: str
    site: str
    received_at_ms: int
    ip: str
    timezone: str | None
    email: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    url: str | None = None
    referrer: str | None = None
    title: str | None = None

    def values(self) -> tuple[Any, ...]:
        """Return the fields in the order of VISIT_COLUMNS, as SQL parameters."""
        return (
            self.id,
            self.site,
            self.received_at_ms,
            self.ip,
            self.timezone,
            self.email,
            self.latitude,
            self.longitude,
            self.url,
            self.referrer,
            self.title,
        )

    def to_record(self) -> dict[str, Any]:
        """Return the visit as a flat dict of JSON-compatible values (the log's wire form)."""
        return {
            "id": self.id,
            "site": self.site,
            "received_at_ms": self.received_at_ms,
            "ip": self.ip,
            "timezone": self.timezone,
            "email": self.email,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "url": self.url,
            "referrer": self.referrer,
            "title": self.title,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Visit:
        """Build a visit from the dict that `to_record` produced."""
        return cls(**record)


def iso_from_ms(timestamp_ms: int) -> str:
    """Format a Unix timestamp in milliseconds as ISO-8601 in UTC with an explicit offset."""
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class VisitorCount:
    """One row of the top-visitors view."""

    ip: str
    visits: int
    last_visit_at_ms: int


@dataclass(frozen=True, slots=True)
class SiteStats:
    """The read model of one site: what `/api/stats` returns, before it is cut to `limit`."""

    site: str
    total_visits: int
    distinct_visitors: int
    top_visitors: tuple[VisitorCount, ...]
    latest_visits: tuple[Visit, ...]
