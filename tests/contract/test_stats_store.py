"""Contract tests of StatsStore, run against every backend in BACKENDS.

Entries come from the backend's own log, so their entry ids are the ones a consumer receives.
The tests also act as the store consumer, so the event store, which a rebuild counts,
receives every visit through the `store` group as in a running deployment.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from footfall.log.base import STATS_GROUP, STORE_GROUP, EventLog, LogEntry
from footfall.model import LATEST_VISITS_CAPACITY, SiteStats, Visit
from footfall.stats.base import StatsStore
from footfall.stats.model import empty_stats, recount
from footfall.store.base import EventStore

if TYPE_CHECKING:
    from contract.conftest import Backend, Scenario

RunScenario = Callable[["Scenario"], None]

BASE_TIME_MS = 1_700_000_000_000
READ_BLOCK_MS = 1_000
SITES = ("site-a", "site-b", "site-c")


def _visit(number: int, site: str, ip: str, received_at_ms: int) -> Visit:
    return Visit(
        id=f"event-{number:04d}",
        site=site,
        received_at_ms=received_at_ms,
        ip=ip,
        timezone="Africa/Nairobi",
        url=f"https://{site}.example/page/{number}",
    )


def _mixed_visits(count: int, first_number: int = 0) -> list[Visit]:
    """Visits over three sites and five IPs, with repeated and out-of-order timestamps."""
    visits = []
    for number in range(first_number, first_number + count):
        site = SITES[number * 7 % len(SITES)]
        ip = f"203.0.113.{number * 3 % 5 + 1}"
        received_at_ms = BASE_TIME_MS + (number * 5) % 11
        visits.append(_visit(number, site, ip, received_at_ms))
    return visits


@dataclass
class Feed:
    """The log and event store of one scenario, kept open as a worker keeps them."""

    log: EventLog
    store: EventStore

    async def append_and_store(self, visits: list[Visit]) -> None:
        """Append visits to the log, then store them through the store group and ack them."""
        for visit in visits:
            await self.log.append(visit)
        stored = await self.log.read_batch(STORE_GROUP, "contract", len(visits), READ_BLOCK_MS)
        await self.store.store_batch(stored)
        await self.log.ack(STORE_GROUP, stored)

        assert [entry.visit for entry in stored] == visits

    async def deliver(self, visits: list[Visit]) -> list[LogEntry]:
        """Append and store visits, and read them back as the stats consumer receives them."""
        await self.append_and_store(visits)
        entries = await self.log.read_batch(STATS_GROUP, "contract", len(visits), READ_BLOCK_MS)

        assert [entry.visit for entry in entries] == visits
        return entries

    async def drain_stats_group(self, stats: StatsStore) -> None:
        """Apply whatever the stats group has not received yet, as a running consumer would."""
        while entries := await self.log.read_batch(STATS_GROUP, "contract", 100, 0):
            await stats.apply_batch(STATS_GROUP, entries)


@asynccontextmanager
async def open_feed(backend: Backend) -> AsyncIterator[Feed]:
    async with backend.event_log() as log, backend.event_store() as store:
        yield Feed(log, store)


async def _apply_in_batches(stats: StatsStore, entries: list[LogEntry], size: int) -> None:
    for start in range(0, len(entries), size):
        await stats.apply_batch(STATS_GROUP, entries[start : start + size])


async def _all_site_stats(stats: StatsStore, sites: tuple[str, ...]) -> dict[str, SiteStats]:
    return {site: await stats.site_stats(site, LATEST_VISITS_CAPACITY) for site in sites}


def _expected(visits: list[Visit], sites: tuple[str, ...]) -> dict[str, SiteStats]:
    counted = recount(visits)
    return {site: counted.get(site, empty_stats(site)) for site in sites}


def _assert_same_stats(actual: SiteStats, expected: SiteStats) -> None:
    assert actual.site == expected.site
    assert actual.total_visits == expected.total_visits
    assert actual.distinct_visitors == expected.distinct_visitors
    assert actual.top_visitors == expected.top_visitors
    assert actual.latest_visits == expected.latest_visits


def _assert_all_same(actual: dict[str, SiteStats], expected: dict[str, SiteStats]) -> None:
    assert actual.keys() == expected.keys()
    for site, site_stats in actual.items():
        _assert_same_stats(site_stats, expected[site])


def test_apply_batch_equals_recount(run_scenario: RunScenario) -> None:
    visits = _mixed_visits(40)

    async def scenario(backend: Backend) -> None:
        async with open_feed(backend) as feed, backend.stats_store() as stats:
            entries = await feed.deliver(visits)
            await _apply_in_batches(stats, entries, 7)
            actual = await _all_site_stats(stats, SITES)

        assert sum(site_stats.total_visits for site_stats in actual.values()) == 40
        _assert_all_same(actual, _expected(visits, SITES))

    run_scenario(scenario)


def test_apply_batch_empty_list(run_scenario: RunScenario) -> None:
    visits = _mixed_visits(6)

    async def scenario(backend: Backend) -> None:
        async with open_feed(backend) as feed, backend.stats_store() as stats:
            entries = await feed.deliver(visits)
            await stats.apply_batch(STATS_GROUP, entries)
            await stats.apply_batch(STATS_GROUP, [])
            actual = await _all_site_stats(stats, SITES)

        _assert_all_same(actual, _expected(visits, SITES))

    run_scenario(scenario)


def test_replayed_batch_changes_nothing(run_scenario: RunScenario) -> None:
    visits = _mixed_visits(20)

    async def scenario(backend: Backend) -> None:
        async with open_feed(backend) as feed, backend.stats_store() as stats:
            entries = await feed.deliver(visits)
            first, second = entries[:12], entries[12:]
            await stats.apply_batch(STATS_GROUP, first)
            await stats.apply_batch(STATS_GROUP, first)
            await stats.apply_batch(STATS_GROUP, second)
            await stats.apply_batch(STATS_GROUP, first)
            await stats.apply_batch(STATS_GROUP, second)
            await stats.apply_batch(STATS_GROUP, entries)
            actual = await _all_site_stats(stats, SITES)

        _assert_all_same(actual, _expected(visits, SITES))

    run_scenario(scenario)


def test_overlapping_redelivery_counts_once(run_scenario: RunScenario) -> None:
    visits = _mixed_visits(20)

    async def scenario(backend: Backend) -> None:
        async with open_feed(backend) as feed, backend.stats_store() as stats:
            entries = await feed.deliver(visits)
            await stats.apply_batch(STATS_GROUP, entries[:8])
            # A redelivered batch that contains applied entries and new ones.
            await stats.apply_batch(STATS_GROUP, entries[5:14])
            await stats.apply_batch(STATS_GROUP, entries[10:])
            actual = await _all_site_stats(stats, SITES)

        _assert_all_same(actual, _expected(visits, SITES))

    run_scenario(scenario)


def test_redelivery_after_restart_counts_once(run_scenario: RunScenario) -> None:
    visits = _mixed_visits(15)

    async def scenario(backend: Backend) -> None:
        async with open_feed(backend) as feed:
            entries = await feed.deliver(visits)
            async with backend.stats_store() as stats:
                await stats.apply_batch(STATS_GROUP, entries[:10])
            async with backend.stats_store() as stats:
                await stats.apply_batch(STATS_GROUP, entries)
                actual = await _all_site_stats(stats, SITES)

        _assert_all_same(actual, _expected(visits, SITES))

    run_scenario(scenario)


def test_site_stats_respects_limit(run_scenario: RunScenario) -> None:
    visits = _mixed_visits(30)

    async def scenario(backend: Backend) -> None:
        async with open_feed(backend) as feed, backend.stats_store() as stats:
            entries = await feed.deliver(visits)
            await stats.apply_batch(STATS_GROUP, entries)
            limited = {limit: await stats.site_stats("site-a", limit) for limit in (1, 3)}

        full = recount(visits)["site-a"]
        assert len(full.top_visitors) > 3
        assert len(full.latest_visits) > 3
        for limit, site_stats in limited.items():
            assert site_stats.top_visitors == full.top_visitors[:limit]
            assert site_stats.latest_visits == full.latest_visits[:limit]
            assert site_stats.total_visits == full.total_visits
            assert site_stats.distinct_visitors == full.distinct_visitors

    run_scenario(scenario)


def test_sites_are_separate(run_scenario: RunScenario) -> None:
    site_a = [_visit(number, "site-a", "192.0.2.1", BASE_TIME_MS) for number in range(3)]
    site_b = [_visit(number, "site-b", "192.0.2.2", BASE_TIME_MS) for number in range(3, 5)]

    async def scenario(backend: Backend) -> None:
        async with open_feed(backend) as feed, backend.stats_store() as stats:
            entries = await feed.deliver(site_a + site_b)
            await stats.apply_batch(STATS_GROUP, entries)
            actual = await _all_site_stats(stats, ("site-a", "site-b", "site-c"))

        assert actual["site-a"].total_visits == 3
        assert {visit.site for visit in actual["site-a"].latest_visits} == {"site-a"}
        assert [visitor.ip for visitor in actual["site-a"].top_visitors] == ["192.0.2.1"]
        assert actual["site-b"].total_visits == 2
        assert [visitor.ip for visitor in actual["site-b"].top_visitors] == ["192.0.2.2"]
        _assert_same_stats(actual["site-c"], empty_stats("site-c"))

    run_scenario(scenario)


def test_top_visitors_by_visits_then_ip(run_scenario: RunScenario) -> None:
    # 10.0.0.10 sorts before 10.0.0.2 as text, which is the order the contract names.
    visits_per_ip = {"10.0.0.9": 3, "10.0.0.1": 1, "10.0.0.10": 3, "10.0.0.5": 4, "10.0.0.2": 3}
    visits = []
    for ip, count in visits_per_ip.items():
        for _ in range(count):
            number = len(visits)
            # Times go down and up again, so the last visit is not always the latest.
            received_at_ms = BASE_TIME_MS + (number * 7) % 5
            visits.append(_visit(number, "site-a", ip, received_at_ms))

    async def scenario(backend: Backend) -> None:
        async with open_feed(backend) as feed, backend.stats_store() as stats:
            entries = await feed.deliver(visits)
            await _apply_in_batches(stats, entries, 4)
            actual = await stats.site_stats("site-a", LATEST_VISITS_CAPACITY)

        ranking = [(visitor.ip, visitor.visits) for visitor in actual.top_visitors]
        assert ranking == [
            ("10.0.0.5", 4),
            ("10.0.0.10", 3),
            ("10.0.0.2", 3),
            ("10.0.0.9", 3),
            ("10.0.0.1", 1),
        ]
        for visitor in actual.top_visitors:
            own_times = [visit.received_at_ms for visit in visits if visit.ip == visitor.ip]
            assert visitor.last_visit_at_ms == max(own_times), visitor.ip
        assert actual.distinct_visitors == 5

    run_scenario(scenario)


def test_latest_visits_newest_first_capped(run_scenario: RunScenario) -> None:
    count = LATEST_VISITS_CAPACITY + 35
    # Times jump back and forth and repeat, so log order and time order disagree.
    site_a = [
        _visit(number, "site-a", "192.0.2.1", BASE_TIME_MS + (number * 37) % 60)
        for number in range(count)
    ]
    site_b = [_visit(count + number, "site-b", "192.0.2.1", BASE_TIME_MS) for number in range(3)]
    visits = site_a[:50] + site_b + site_a[50:]

    async def scenario(backend: Backend) -> None:
        async with open_feed(backend) as feed, backend.stats_store() as stats:
            entries = await feed.deliver(visits)
            await _apply_in_batches(stats, entries, 45)
            actual_a = await stats.site_stats("site-a", LATEST_VISITS_CAPACITY)
            actual_b = await stats.site_stats("site-b", LATEST_VISITS_CAPACITY)

        newest_first = sorted(site_a, key=lambda visit: (visit.received_at_ms, visit.id))[::-1]
        assert [visit.id for visit in actual_a.latest_visits] == [
            visit.id for visit in newest_first[:LATEST_VISITS_CAPACITY]
        ]
        assert actual_a.latest_visits == recount(visits)["site-a"].latest_visits
        assert actual_a.total_visits == count
        assert [visit.id for visit in actual_b.latest_visits] == [
            visit.id for visit in reversed(site_b)
        ]

    run_scenario(scenario)


def test_rebuild_equals_recount_and_live(run_scenario: RunScenario) -> None:
    visits = _mixed_visits(LATEST_VISITS_CAPACITY + 60)

    async def scenario(backend: Backend) -> None:
        async with open_feed(backend) as feed, backend.stats_store() as stats:
            entries = await feed.deliver(visits)
            await _apply_in_batches(stats, entries, 33)
            live = await _all_site_stats(stats, SITES)
            counted = await stats.rebuild(feed.store)
            rebuilt = await _all_site_stats(stats, SITES)

        assert counted == len(visits)
        expected = _expected(visits, SITES)
        _assert_all_same(live, expected)
        _assert_all_same(rebuilt, expected)

    run_scenario(scenario)


def test_rebuild_then_consumer_catches_up(run_scenario: RunScenario) -> None:
    visits = _mixed_visits(25)

    async def scenario(backend: Backend) -> None:
        async with open_feed(backend) as feed, backend.stats_store() as stats:
            # Stored events that the stats group has not even received yet.
            await feed.append_and_store(visits)
            before = await _all_site_stats(stats, SITES)
            counted = await stats.rebuild(feed.store)
            await feed.drain_stats_group(stats)
            caught_up = await _all_site_stats(stats, SITES)

        # A rebuild may count these events itself or leave them to the consumer.
        assert 0 <= counted <= len(visits)
        _assert_all_same(before, _expected([], SITES))
        _assert_all_same(caught_up, _expected(visits, SITES))

    run_scenario(scenario)


def test_rebuild_counted_entries_not_reapplied(run_scenario: RunScenario) -> None:
    visits = _mixed_visits(20)
    later_visits = _mixed_visits(10, first_number=20)

    async def scenario(backend: Backend) -> None:
        async with open_feed(backend) as feed, backend.stats_store() as stats:
            entries = await feed.deliver(visits)
            await stats.apply_batch(STATS_GROUP, entries[:5])
            await stats.rebuild(feed.store)
            # The consumer read these before the rebuild and applies them after it.
            await stats.apply_batch(STATS_GROUP, entries[5:])
            after_rebuild = await _all_site_stats(stats, SITES)

            later_entries = await feed.deliver(later_visits)
            await stats.apply_batch(STATS_GROUP, later_entries)
            at_end = await _all_site_stats(stats, SITES)

        _assert_all_same(after_rebuild, _expected(visits, SITES))
        _assert_all_same(at_end, _expected(visits + later_visits, SITES))

    run_scenario(scenario)
