"""Property tests of the counting invariants of the SQLite stats store.

Whatever the visits, however the log's entries are split into batches and whichever
batches are delivered again, the stats equal `recount` of the visits, and so does a rebuild.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from footfall.backends.sqlite_db import SqliteDatabase
from footfall.log.base import STATS_GROUP, LogEntry
from footfall.log.sqlite import SqliteEventLog
from footfall.model import LATEST_VISITS_CAPACITY, SiteStats, Visit
from footfall.stats.model import empty_stats, recount
from footfall.stats.sqlite import SqliteStatsStore
from footfall.store.sqlite import SqliteEventStore

SITES = ("site-a", "site-b", "site-c")
IPS = ("192.0.2.1", "192.0.2.2", "192.0.2.10", "2001:db8::1")
BASE_TIME_MS = 1_700_000_000_000


def visit_lists(
    sites: tuple[str, ...], max_id: int, min_size: int, max_size: int
) -> st.SearchStrategy[list[Visit]]:
    """Visits drawn from few sites, IPs and times, with ids from 0 to `max_id`.

    When the lists are long next to `max_id`, ids come back as client retries would.
    """
    return st.lists(
        st.builds(
            Visit,
            id=st.integers(min_value=0, max_value=max_id).map(lambda number: f"event-{number}"),
            site=st.sampled_from(sites),
            received_at_ms=st.integers(min_value=BASE_TIME_MS, max_value=BASE_TIME_MS + 4),
            ip=st.sampled_from(IPS),
            timezone=st.sampled_from(["UTC", "Europe/Paris", "Pacific/Auckland"]),
            email=st.none() | st.just("visitor@example.com"),
        ),
        min_size=min_size,
        max_size=max_size,
    )


def _split_points(data: st.DataObject, count: int) -> list[tuple[int, int]]:
    """Draw a split of `count` entries into consecutive batches, as (start, end) pairs."""
    cuts = data.draw(st.sets(st.integers(min_value=1, max_value=max(count - 1, 1))), label="cuts")
    bounds = [0, *sorted(cut for cut in cuts if cut < count), count]
    return [(start, end) for start, end in itertools.pairwise(bounds) if end > start]


async def _append_and_read(database: SqliteDatabase, visits: list[Visit]) -> list[LogEntry]:
    log = SqliteEventLog(database)
    log.start()
    try:
        for visit in visits:
            await log.append(visit)
        return await log.read_batch(STATS_GROUP, "property", len(visits) + 1, 0)
    finally:
        await log.close()


async def _site_stats(stats: SqliteStatsStore) -> dict[str, SiteStats]:
    sites = (*SITES, "site-without-visits")
    return {site: await stats.site_stats(site, LATEST_VISITS_CAPACITY) for site in sites}


def _expected(visits: list[Visit]) -> dict[str, SiteStats]:
    counted = recount(visits)
    sites = (*SITES, "site-without-visits")
    return {site: counted.get(site, empty_stats(site)) for site in sites}


async def _run_pipeline(
    path: Path, visits: list[Visit], data: st.DataObject
) -> tuple[dict[str, SiteStats], dict[str, SiteStats], int]:
    """Deliver the visits in drawn batches with drawn redeliveries, then rebuild.

    Returns the live stats, the rebuilt stats and the count the rebuild reported.
    """
    database = SqliteDatabase(path)
    try:
        entries = await _append_and_read(database, visits)
        stats = SqliteStatsStore(database)
        batches = [entries[start:end] for start, end in _split_points(data, len(entries))]
        for index, batch in enumerate(batches):
            await stats.apply_batch(STATS_GROUP, batch)
            # Any batch delivered so far may come again, as after a crash before the ack.
            replays = data.draw(
                st.lists(st.integers(min_value=0, max_value=index), max_size=3), label="replays"
            )
            for replay in replays:
                await stats.apply_batch(STATS_GROUP, batches[replay])

        live = await _site_stats(stats)
        counted = await stats.rebuild(SqliteEventStore(database))
        rebuilt = await _site_stats(stats)
    finally:
        database.close()
    return live, rebuilt, counted


def _check_pipeline(visits: list[Visit], data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory(prefix="footfall-property-") as work_dir:
        path = Path(work_dir) / "footfall.db"
        live, rebuilt, counted = asyncio.run(_run_pipeline(path, visits, data))

    expected = _expected(visits)
    assert live == expected
    assert rebuilt == expected
    assert counted == len({visit.id for visit in visits})


@settings(max_examples=80, deadline=None)
@given(visits=visit_lists(SITES, max_id=60, min_size=0, max_size=80), data=st.data())
def test_any_batching_and_redelivery_equals_recount(
    visits: list[Visit], data: st.DataObject
) -> None:
    _check_pipeline(visits, data)


@settings(max_examples=20, deadline=None)
@given(
    # Few repeats among 3001 ids, so the site keeps more than 100 distinct visits.
    visits=visit_lists(
        ("site-a",), max_id=3_000, min_size=LATEST_VISITS_CAPACITY + 20, max_size=170
    ),
    data=st.data(),
)
def test_latest_visits_past_capacity_equal_recount(
    visits: list[Visit], data: st.DataObject
) -> None:
    _check_pipeline(visits, data)
