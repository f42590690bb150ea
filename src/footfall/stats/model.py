"""The stats read model computed in memory: the reference every stats store must equal.

`recount` is what a rebuild means: counting the event history from scratch. Tests compare
every live stats store against it, and the Redis rebuild uses it to build fresh keys.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from footfall.model import LATEST_VISITS_CAPACITY, SiteStats, Visit, VisitorCount


@dataclass
class _SiteTally:
    visits: dict[str, int] = field(default_factory=dict)
    last_visit_at_ms: dict[str, int] = field(default_factory=dict)
    latest: list[Visit] = field(default_factory=list)


def recount(visits: Iterable[Visit]) -> dict[str, SiteStats]:
    """Count visits per site from scratch, given in log order (oldest first).

    Top visitors are ordered by visits descending, then IP ascending. The latest visits are
    the last LATEST_VISITS_CAPACITY in log order, newest first. A visit id seen twice
    counts once, as the stores promise.
    """
    tallies: dict[str, _SiteTally] = {}
    seen: set[str] = set()
    for visit in visits:
        if visit.id in seen:
            continue
        seen.add(visit.id)
        tally = tallies.setdefault(visit.site, _SiteTally())
        tally.visits[visit.ip] = tally.visits.get(visit.ip, 0) + 1
        previous_ms = tally.last_visit_at_ms.get(visit.ip, visit.received_at_ms)
        tally.last_visit_at_ms[visit.ip] = max(previous_ms, visit.received_at_ms)
        tally.latest.append(visit)
        if len(tally.latest) > 2 * LATEST_VISITS_CAPACITY:
            del tally.latest[:-LATEST_VISITS_CAPACITY]

    return {site: _site_stats(site, tally) for site, tally in tallies.items()}


def _site_stats(site: str, tally: _SiteTally) -> SiteStats:
    ranked = sorted(tally.visits.items(), key=lambda item: (-item[1], item[0]))
    top = tuple(
        VisitorCount(ip, visits, tally.last_visit_at_ms[ip])
        for ip, visits in ranked[:LATEST_VISITS_CAPACITY]
    )
    latest = tuple(reversed(tally.latest[-LATEST_VISITS_CAPACITY:]))
    return SiteStats(site, sum(tally.visits.values()), len(tally.visits), top, latest)


def empty_stats(site: str) -> SiteStats:
    """Return the stats of a site with no visits."""
    return SiteStats(site, 0, 0, (), ())
