"""Contract tests of EventLog, run against every backend in BACKENDS with a log of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from footfall.errors import BackendUnavailable
from footfall.log.base import STATS_GROUP, STORE_GROUP, EventLog, LogEntry
from footfall.model import Visit

if TYPE_CHECKING:
    from contract.conftest import Backend, Scenario

# The `mongodb` backend's log is the Redis log of `distributed`.
pytestmark = pytest.mark.parametrize("run_scenario", ["sqlite", "distributed"], indirect=True)

RunScenario = Callable[["Scenario"], None]

BASE_TIME_MS = 1_700_000_000_000
READ_BLOCK_MS = 1_000
"""How long a read waits for entries that a test has just appended."""


def _visit(number: int, received_at_ms: int = BASE_TIME_MS) -> Visit:
    return Visit(
        id=f"event-{number:04d}",
        site="site-a",
        received_at_ms=received_at_ms + number,
        ip=f"192.0.2.{number % 250 + 1}",
        timezone="Europe/Berlin",
    )


async def _append_all(log: EventLog, visits: list[Visit]) -> None:
    for visit in visits:
        await log.append(visit)


def _ids(entries: list[LogEntry]) -> list[str]:
    return [entry.visit.id for entry in entries]


def test_read_batch_returns_appends_oldest_first(run_scenario: RunScenario) -> None:
    full_visit = Visit(
        id="event-full",
        site="shop.example",
        received_at_ms=BASE_TIME_MS,
        ip="2001:db8::1",
        timezone="America/Sao_Paulo",
        email="reader@example.org",
        latitude=-23.55,
        longitude=-46.63,
        url="https://shop.example/cart?id=7",
        referrer="https://search.example/",
        title="Grüße aus Köln",
    )
    visits = [_visit(3), full_visit, _visit(1), _visit(2)]

    async def scenario(backend: Backend) -> None:
        async with backend.event_log() as log:
            await _append_all(log, visits)
            entries = await log.read_batch(STATS_GROUP, "consumer-1", 10, READ_BLOCK_MS)

        assert [entry.visit for entry in entries] == visits
        assert len({entry.entry_id for entry in entries}) == len(visits)

    run_scenario(scenario)


def test_read_batch_respects_max_count(run_scenario: RunScenario) -> None:
    visits = [_visit(number) for number in range(5)]

    async def scenario(backend: Backend) -> None:
        async with backend.event_log() as log:
            await _append_all(log, visits)
            entries = await log.read_batch(STATS_GROUP, "consumer-1", 2, READ_BLOCK_MS)

        assert _ids(entries) == [visit.id for visit in visits[:2]]

    run_scenario(scenario)


def test_read_batch_empty_log(run_scenario: RunScenario) -> None:
    async def scenario(backend: Backend) -> None:
        async with backend.event_log() as log:
            entries = await log.read_batch(STATS_GROUP, "consumer-1", 10, 50)

        assert entries == []

    run_scenario(scenario)


def test_blocked_read_wakes_on_append(run_scenario: RunScenario) -> None:
    visit = _visit(1)

    async def scenario(backend: Backend) -> None:
        async with backend.event_log() as log:
            read = asyncio.create_task(log.read_batch(STATS_GROUP, "consumer-1", 10, 5_000))
            # Let the read start waiting before the append, which is the case under test.
            await asyncio.sleep(0.05)
            await log.append(visit)
            entries = await read

        assert _ids(entries) == [visit.id]

    run_scenario(scenario)


async def _take_over(log: EventLog, group: str, consumer: str) -> list[LogEntry]:
    """Return what a restarted consumer receives first: stale claims, then a read.

    A log with offsets delivers unacknowledged entries again on the next read. A log with
    pending entries hands them over through `claim_stale`. The contract allows both.
    """
    claimed = await log.claim_stale(group, consumer, 0, 100)
    read = await log.read_batch(group, consumer, 100, 50)
    return claimed + read


def test_unacked_entries_redelivered_after_restart(run_scenario: RunScenario) -> None:
    visits = [_visit(number) for number in range(3)]

    async def scenario(backend: Backend) -> None:
        async with backend.event_log() as log:
            await _append_all(log, visits)
            first = await log.read_batch(STATS_GROUP, "consumer-1", 10, READ_BLOCK_MS)

        async with backend.event_log() as log:
            again = await _take_over(log, STATS_GROUP, "consumer-1")

        assert _ids(first) == [visit.id for visit in visits]
        assert _ids(again) == _ids(first)
        assert [entry.entry_id for entry in again] == [entry.entry_id for entry in first]

    run_scenario(scenario)


def test_other_consumer_takes_over_unacked(run_scenario: RunScenario) -> None:
    visits = [_visit(number) for number in range(4)]

    async def scenario(backend: Backend) -> None:
        async with backend.event_log() as log:
            await _append_all(log, visits)
            left = await log.read_batch(STATS_GROUP, "consumer-1", 3, READ_BLOCK_MS)
            taken_over = await _take_over(log, STATS_GROUP, "consumer-2")
            await log.ack(STATS_GROUP, taken_over)
            backlog = await log.backlog(STATS_GROUP)

        assert _ids(left) == [visit.id for visit in visits[:3]]
        assert sorted(_ids(taken_over)) == sorted(visit.id for visit in visits)
        assert backlog == 0

    run_scenario(scenario)


def test_claim_stale_skips_recent_entries(run_scenario: RunScenario) -> None:
    visits = [_visit(number) for number in range(3)]

    async def scenario(backend: Backend) -> None:
        async with backend.event_log() as log:
            empty_claim = await log.claim_stale(STATS_GROUP, "consumer-2", 0, 10)
            await _append_all(log, visits)
            await log.read_batch(STATS_GROUP, "consumer-1", 10, READ_BLOCK_MS)
            recent_claim = await log.claim_stale(STATS_GROUP, "consumer-2", 600_000, 10)

        assert empty_claim == []
        assert recent_claim == [], "entries read just now are not stale after 10 minutes"

    run_scenario(scenario)


def test_claim_stale_respects_max_count(run_scenario: RunScenario) -> None:
    visits = [_visit(number) for number in range(5)]

    async def scenario(backend: Backend) -> None:
        async with backend.event_log() as log:
            await _append_all(log, visits)
            await log.read_batch(STATS_GROUP, "consumer-1", 10, READ_BLOCK_MS)
            claimed = await log.claim_stale(STATS_GROUP, "consumer-2", 0, 2)

        assert len(claimed) <= 2
        assert set(_ids(claimed)) <= {visit.id for visit in visits}

    run_scenario(scenario)


def test_ack_moves_group_past_entries(run_scenario: RunScenario) -> None:
    visits = [_visit(number) for number in range(4)]

    async def scenario(backend: Backend) -> None:
        async with backend.event_log() as log:
            await _append_all(log, visits)
            first = await log.read_batch(STATS_GROUP, "consumer-1", 2, READ_BLOCK_MS)
            await log.ack(STATS_GROUP, first)
            second = await log.read_batch(STATS_GROUP, "consumer-1", 10, READ_BLOCK_MS)

        assert _ids(first) == [visit.id for visit in visits[:2]]
        assert _ids(second) == [visit.id for visit in visits[2:]]

    run_scenario(scenario)


def test_ack_survives_restart(run_scenario: RunScenario) -> None:
    visits = [_visit(number) for number in range(4)]

    async def scenario(backend: Backend) -> None:
        async with backend.event_log() as log:
            await _append_all(log, visits)
            first = await log.read_batch(STATS_GROUP, "consumer-1", 3, READ_BLOCK_MS)
            await log.ack(STATS_GROUP, first)

        async with backend.event_log() as log:
            rest = await log.read_batch(STATS_GROUP, "consumer-1", 10, READ_BLOCK_MS)
            backlog = await log.backlog(STATS_GROUP)

        assert _ids(rest) == [visits[3].id]
        assert backlog == 1

    run_scenario(scenario)


def test_ack_twice_is_harmless(run_scenario: RunScenario) -> None:
    visits = [_visit(number) for number in range(4)]

    async def scenario(backend: Backend) -> None:
        async with backend.event_log() as log:
            await _append_all(log, visits)
            first = await log.read_batch(STATS_GROUP, "consumer-1", 2, READ_BLOCK_MS)
            await log.ack(STATS_GROUP, first)
            await log.ack(STATS_GROUP, first)
            backlog_after_double_ack = await log.backlog(STATS_GROUP)
            second = await log.read_batch(STATS_GROUP, "consumer-1", 10, READ_BLOCK_MS)
            await log.ack(STATS_GROUP, second)
            # An old batch acknowledged again must not move the group back.
            await log.ack(STATS_GROUP, first)
            backlog_at_end = await log.backlog(STATS_GROUP)
            left = await log.read_batch(STATS_GROUP, "consumer-1", 10, 50)

        assert backlog_after_double_ack == 2
        assert _ids(second) == [visit.id for visit in visits[2:]]
        assert backlog_at_end == 0
        assert left == []

    run_scenario(scenario)


def test_ack_empty_list(run_scenario: RunScenario) -> None:
    visits = [_visit(number) for number in range(2)]

    async def scenario(backend: Backend) -> None:
        async with backend.event_log() as log:
            await _append_all(log, visits)
            await log.ack(STATS_GROUP, [])
            backlog = await log.backlog(STATS_GROUP)
            entries = await log.read_batch(STATS_GROUP, "consumer-1", 10, READ_BLOCK_MS)

        assert backlog == 2
        assert _ids(entries) == [visit.id for visit in visits]

    run_scenario(scenario)


def test_groups_are_independent(run_scenario: RunScenario) -> None:
    visits = [_visit(number) for number in range(3)]

    async def scenario(backend: Backend) -> None:
        async with backend.event_log() as log:
            await _append_all(log, visits)
            stats_entries = await log.read_batch(STATS_GROUP, "consumer-1", 10, READ_BLOCK_MS)
            await log.ack(STATS_GROUP, stats_entries)
            stats_backlog = await log.backlog(STATS_GROUP)
            store_backlog = await log.backlog(STORE_GROUP)
            store_entries = await log.read_batch(STORE_GROUP, "consumer-1", 10, READ_BLOCK_MS)

        assert stats_backlog == 0
        assert store_backlog == 3
        assert _ids(store_entries) == [visit.id for visit in visits]

    run_scenario(scenario)


def test_backlog_counts_unacked_entries(run_scenario: RunScenario) -> None:
    visits = [_visit(number) for number in range(5)]

    async def scenario(backend: Backend) -> None:
        async with backend.event_log() as log:
            empty_backlog = await log.backlog(STATS_GROUP)
            await _append_all(log, visits)
            appended_backlog = await log.backlog(STATS_GROUP)
            entries = await log.read_batch(STATS_GROUP, "consumer-1", 2, READ_BLOCK_MS)
            read_backlog = await log.backlog(STATS_GROUP)
            await log.ack(STATS_GROUP, entries)
            acked_backlog = await log.backlog(STATS_GROUP)

        assert empty_backlog == 0
        assert appended_backlog == 5
        assert read_backlog == 5, "reading without an ack must leave entries in the backlog"
        assert acked_backlog == 3

    run_scenario(scenario)


def test_client_event_id_appended_once(run_scenario: RunScenario) -> None:
    original = _visit(1)
    retry = Visit(
        id=original.id,
        site=original.site,
        received_at_ms=original.received_at_ms + 900,
        ip=original.ip,
        timezone=original.timezone,
    )
    other = _visit(2)

    async def scenario(backend: Backend) -> None:
        async with backend.event_log() as log:
            await log.append(original, deduplicate=True)
            await log.append(retry, deduplicate=True)
            await log.append(other, deduplicate=True)
            entries = await log.read_batch(STATS_GROUP, "consumer-1", 10, READ_BLOCK_MS)
            backlog = await log.backlog(STATS_GROUP)

        assert [entry.visit for entry in entries] == [original, other]
        assert backlog == 2

    run_scenario(scenario)


def test_append_after_close_unavailable(run_scenario: RunScenario) -> None:
    async def scenario(backend: Backend) -> None:
        async with backend.event_log() as log:
            await log.close()
            with pytest.raises(BackendUnavailable):
                await log.append(_visit(1))

    run_scenario(scenario)


def test_close_soon_after_start_returns(run_scenario: RunScenario) -> None:
    async def scenario(backend: Backend) -> None:
        for cycle in range(30):
            async with backend.event_log():
                # A short pause lets the log's background work start a backend call, which
                # close has to end too. The fixture fails the test if close never returns.
                await asyncio.sleep(cycle % 5 / 5_000)

    run_scenario(scenario)


def test_close_keeps_appends_that_returned(run_scenario: RunScenario) -> None:
    visits = [_visit(number) for number in range(20)]

    async def scenario(backend: Backend) -> None:
        async with backend.event_log() as log:
            appends = [asyncio.create_task(log.append(visit)) for visit in visits]
            # One loop turn lets every append reach the log before close starts.
            await asyncio.sleep(0)
            await log.close()
            outcomes = await asyncio.gather(*appends, return_exceptions=True)

        async with backend.event_log() as log:
            entries = await log.read_batch(STATS_GROUP, "consumer-1", 100, READ_BLOCK_MS)

        for outcome in outcomes:
            assert outcome is None or isinstance(outcome, BackendUnavailable), repr(outcome)
        pairs = zip(visits, outcomes, strict=True)
        returned = [visit.id for visit, outcome in pairs if outcome is None]
        assert returned, "no append finished, so the test checked nothing"
        assert _ids(entries) == returned

    run_scenario(scenario)
