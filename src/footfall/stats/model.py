"""The stats read model computed in memory: the reference every stats store must equal.

`recount` is what a rebuild means: counting the event history from scratch. Tests compare
every live stats store against it, and the Redis rebuild writes its tallies as fresh keys.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from footfall.model import LATEST_VISITS_CAPACITY, SiteStats, Visit, VisitorCount


def latest_order(visit: Visit) -> tuple[int, str]:
    """Return the sort key of the latest-visits view: newest time first, then highest id."""
    return (visit.received_at_ms, visit.id)


@dataclass
class SiteTally:
    """Every visitor's count and latest time of one site, and its newest visits."""

    visits: dict[str, int] = field(default_factory=dict)
    last_visit_at_ms: dict[str, int] = field(default_factory=dict)
    latest: list[Visit] = field(default_factory=list)

    def add(self, visit: Visit) -> None:
        self.visits[visit.ip] = self.visits.get(visit.ip, 0) + 1
        previous_ms = self.last_visit_at_ms.get(visit.ip, visit.received_at_ms)
        self.last_visit_at_ms[visit.ip] = max(previous_ms, visit.received_at_ms)
        self.latest.append(visit)
        if len(self.latest) > 4 * LATEST_VISITS_CAPACITY:
            self.trim_latest()

    def trim_latest(self) -> None:
        self.latest.sort(key=latest_order, reverse=True)
        del self.latest[LATEST_VISITS_CAPACITY:]

    def to_stats(self, site: str) -> SiteStats:
        ranked = sorted(self.visits.items(), key=lambda item: (-item[1], item[0]))
        top = tuple(
            VisitorCount(ip, visits, self.last_visit_at_ms[ip])
            for ip, visits in ranked[:LATEST_VISITS_CAPACITY]
        )
        self.trim_latest()
        return SiteStats(site, sum(self.visits.values()), len(self.visits), top, tuple(self.latest))


def tally_visits(visits: Iterable[Visit]) -> dict[str, SiteTally]:
    """Tally visits per site, in any order. A visit id seen twice counts once."""
    tallies: dict[str, SiteTally] = {}
    seen: set[str] = set()
    for visit in visits:
        if visit.id in seen:
            continue
        seen.add(visit.id)
        tallies.setdefault(visit.site, SiteTally()).add(visit)
    for tally in tallies.values():
        tally.trim_latest()
    return tallies


def recount(visits: Iterable[Visit]) -> dict[str, SiteStats]:
    """Count visits per site from scratch, as every stats store must report them.

    Top visitors: visits descending, then IP ascending. Latest visits: the newest
    LATEST_VISITS_CAPACITY by (time, id), newest first.
    """
    return {site: tally.to_stats(site) for site, tally in tally_visits(visits).items()}


def empty_stats(site: str) -> SiteStats:
    """Return the stats of a site with no visits."""
    return SiteStats(site, 0, 0, (), ())
