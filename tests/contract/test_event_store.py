"""Contract tests of EventStore and its PageCursor, run against every backend in BACKENDS."""

from __future__ import annotations

import base64
import random
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from footfall.errors import InvalidInput
from footfall.log.base import STORE_GROUP, LogEntry
from footfall.model import Visit
from footfall.store.base import EventStore, PageCursor

if TYPE_CHECKING:
    from contract.conftest import Backend, Scenario

RunScenario = Callable[["Scenario"], None]

BASE_TIME_MS = 1_700_000_000_000


def _visit(event_id: str, received_at_ms: int, site: str = "site-a") -> Visit:
    return Visit(
        id=event_id,
        site=site,
        received_at_ms=received_at_ms,
        ip="198.51.100.7",
        timezone="Asia/Tokyo",
    )


def _entries(visits: list[Visit]) -> list[LogEntry]:
    """Wrap visits in log entries with made-up entry ids, as a store consumer passes them."""
    return [LogEntry(f"{1_000 + number}-0", visit) for number, visit in enumerate(visits)]


def _newest_first(visits: list[Visit]) -> list[str]:
    ordered = sorted(visits, key=lambda visit: (visit.received_at_ms, visit.id), reverse=True)
    return [visit.id for visit in ordered]


def _key(visit: Visit) -> tuple[int, str]:
    return (visit.received_at_ms, visit.id)


MAX_PAGES = 200
"""More pages than any walk here needs, so only a cursor that never advances reaches it."""


async def _all_pages(store: EventStore, site: str, limit: int) -> list[str]:
    """Walk every page of a site through encoded cursors, as an API client does."""
    seen: list[str] = []
    token: str | None = None
    for _ in range(MAX_PAGES):
        cursor = PageCursor.decode(token) if token else None
        page = await store.page(site, limit, cursor)
        assert len(page.visits) <= limit
        seen.extend(visit.id for visit in page.visits)
        if page.next_cursor is None:
            return seen
        token = page.next_cursor.encode()
    raise AssertionError(f"paging did not end after {MAX_PAGES} pages: {seen[:20]}")


async def _all_stored(store: EventStore) -> list[Visit]:
    return [entry.visit async for entry in store.iter_entries()]


def _token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_store_batch_twice_stores_each_once(run_scenario: RunScenario) -> None:
    first = [_visit("a", BASE_TIME_MS), _visit("b", BASE_TIME_MS + 1), _visit("c", BASE_TIME_MS)]
    changed_b = _visit("b", BASE_TIME_MS + 500)

    async def scenario(backend: Backend) -> None:
        async with backend.event_store() as store:
            await store.store_batch(_entries(first))
            await store.store_batch(_entries(first))
            await store.store_batch(_entries([changed_b, _visit("d", BASE_TIME_MS + 2)]))
            stored = await _all_stored(store)

        counts = Counter(visit.id for visit in stored)
        assert counts == {"a": 1, "b": 1, "c": 1, "d": 1}
        stored_b = next(visit for visit in stored if visit.id == "b")
        assert stored_b == first[1], "a visit whose id is already stored must be skipped"

    run_scenario(scenario)


def test_store_batch_duplicate_inside_batch(run_scenario: RunScenario) -> None:
    batch = [_visit("a", BASE_TIME_MS), _visit("a", BASE_TIME_MS + 5), _visit("b", BASE_TIME_MS)]

    async def scenario(backend: Backend) -> None:
        async with backend.event_store() as store:
            await store.store_batch(_entries(batch))
            stored = await _all_stored(store)

        assert sorted(visit.id for visit in stored) == ["a", "b"]

    run_scenario(scenario)


def test_store_batch_empty_list(run_scenario: RunScenario) -> None:
    async def scenario(backend: Backend) -> None:
        async with backend.event_store() as store:
            await store.store_batch([])
            stored = await _all_stored(store)
            page = await store.page("site-a", 10, None)

        assert stored == []
        assert page.visits == []
        assert page.next_cursor is None

    run_scenario(scenario)


def test_iter_visits_yields_every_site(run_scenario: RunScenario) -> None:
    visits = [
        _visit(f"id-{number}", BASE_TIME_MS + number % 3, site=f"site-{number % 4}")
        for number in range(25)
    ]

    async def scenario(backend: Backend) -> None:
        async with backend.event_store() as store:
            await store.store_batch(_entries(visits))
            stored = await _all_stored(store)

        assert sorted(stored, key=_key) == sorted(visits, key=_key)

    run_scenario(scenario)


def test_iter_entries_keeps_log_entry_ids(run_scenario: RunScenario) -> None:
    visits = [_visit(f"id-{number}", BASE_TIME_MS + number) for number in range(5)]

    async def scenario(backend: Backend) -> None:
        async with backend.event_log() as log:
            for visit in visits:
                await log.append(visit)
            entries = await log.read_batch(STORE_GROUP, "store-1", 10, 1_000)
        async with backend.event_store() as store:
            await store.store_batch(entries)
            stored = [entry async for entry in store.iter_entries()]

        assert [entry.visit for entry in entries] == visits
        by_id = {entry.visit.id: entry for entry in stored}
        assert len(by_id) == len(stored)
        assert {visit_id: entry.entry_id for visit_id, entry in by_id.items()} == {
            entry.visit.id: entry.entry_id for entry in entries
        }
        assert [by_id[visit.id].visit for visit in visits] == visits

    run_scenario(scenario)


def test_page_orders_newest_first_ties_by_id(run_scenario: RunScenario) -> None:
    times_ms = [5, 3, 5, 1, 3, 5, 9, 1]
    ids = ["m", "q", "b", "z", "a", "x", "c", "k"]
    visits = [_visit(event_id, BASE_TIME_MS + t) for event_id, t in zip(ids, times_ms, strict=True)]

    async def scenario(backend: Backend) -> None:
        async with backend.event_store() as store:
            await store.store_batch(_entries(visits))
            page = await store.page("site-a", 100, None)

        assert [visit.id for visit in page.visits] == _newest_first(visits)
        assert [visit.id for visit in page.visits] == ["c", "x", "m", "b", "q", "a", "z", "k"]
        assert page.next_cursor is None

    run_scenario(scenario)


def test_page_returns_full_visits(run_scenario: RunScenario) -> None:
    visit = Visit(
        id="full",
        site="site-a",
        received_at_ms=BASE_TIME_MS,
        ip="2001:db8::7",
        timezone="Europe/Lisbon",
        email="someone@example.net",
        latitude=38.72,
        longitude=-9.14,
        url="https://site-a.example/",
        referrer="https://other.example/link",
        title="Início",
    )

    async def scenario(backend: Backend) -> None:
        async with backend.event_store() as store:
            await store.store_batch(_entries([visit]))
            page = await store.page("site-a", 10, None)

        assert page.visits == [visit]

    run_scenario(scenario)


@pytest.mark.parametrize(
    ("stored", "limit", "expect_cursor"),
    [(5, 4, True), (5, 5, False), (5, 10, False), (1, 1, False)],
)
def test_page_cursor_only_when_more_remain(
    run_scenario: RunScenario, stored: int, limit: int, expect_cursor: bool
) -> None:
    visits = [_visit(f"id-{number}", BASE_TIME_MS + number) for number in range(stored)]

    async def scenario(backend: Backend) -> None:
        async with backend.event_store() as store:
            await store.store_batch(_entries(visits))
            page = await store.page("site-a", limit, None)

        assert len(page.visits) == min(stored, limit)
        assert (page.next_cursor is not None) == expect_cursor

    run_scenario(scenario)


def test_page_is_per_site(run_scenario: RunScenario) -> None:
    site_a = [_visit(f"a-{number}", BASE_TIME_MS + number, site="site-a") for number in range(6)]
    site_b = [_visit(f"b-{number}", BASE_TIME_MS + number, site="site-b") for number in range(4)]

    async def scenario(backend: Backend) -> None:
        async with backend.event_store() as store:
            await store.store_batch(_entries(site_a + site_b))
            seen_a = await _all_pages(store, "site-a", 4)
            seen_b = await _all_pages(store, "site-b", 4)
            seen_unknown = await _all_pages(store, "site-c", 4)

        assert seen_a == _newest_first(site_a)
        assert seen_b == _newest_first(site_b)
        assert seen_unknown == []

    run_scenario(scenario)


@pytest.mark.parametrize("limit", [1, 5, 7, 57, 100])
def test_paging_ties_no_repeat_or_skip(run_scenario: RunScenario, limit: int) -> None:
    shuffler = random.Random(limit)
    ids = [f"id-{number:03d}" for number in range(57)]
    shuffler.shuffle(ids)
    # Three timestamps for 57 visits, so most page boundaries fall inside a tie.
    visits = [_visit(event_id, BASE_TIME_MS + number % 3) for number, event_id in enumerate(ids)]

    async def scenario(backend: Backend) -> None:
        async with backend.event_store() as store:
            await store.store_batch(_entries(visits))
            seen = await _all_pages(store, "site-a", limit)

        assert seen == _newest_first(visits)

    run_scenario(scenario)


def test_paging_while_visits_arrive(run_scenario: RunScenario) -> None:
    initial = [_visit(f"m-{number:03d}", BASE_TIME_MS + number % 5) for number in range(30)]

    async def scenario(backend: Backend) -> None:
        seen: list[Visit] = []
        arrived_behind: list[str] = []
        async with backend.event_store() as store:
            await store.store_batch(_entries(initial))
            cursor: PageCursor | None = None
            round_number = 0
            while round_number < MAX_PAGES:
                page = await store.page("site-a", 4, cursor)
                seen.extend(page.visits)
                if page.next_cursor is None:
                    break
                cursor = PageCursor.decode(page.next_cursor.encode())
                round_number += 1
                tie_time_ms = cursor.received_at_ms
                arrivals = [
                    # Newer than every visit, so it belongs to a page the client has passed.
                    _visit(f"new-{round_number}", BASE_TIME_MS + 1_000 + round_number),
                    # Same time as the cursor and a higher id, so it is ahead of the cursor.
                    _visit(f"z-{round_number}", tie_time_ms),
                    # Same time as the cursor and a lower id, so it is behind the cursor.
                    _visit(f"a-{round_number}", tie_time_ms),
                    # Older than every visit, so it is behind the cursor.
                    _visit(f"old-{round_number}", BASE_TIME_MS - 1_000 - round_number),
                ]
                await store.store_batch(_entries(arrivals))
                arrived_behind += [f"a-{round_number}", f"old-{round_number}"]

        seen_ids = [visit.id for visit in seen]
        assert round_number > 0, "the walk never had a second page"
        assert round_number < MAX_PAGES, f"paging did not end after {MAX_PAGES} pages"
        assert len(seen_ids) == len(set(seen_ids)), "a visit was repeated"
        assert set(seen_ids) >= {visit.id for visit in initial}, "a stored visit was skipped"
        assert set(seen_ids) >= set(arrived_behind), "a visit behind the cursor was skipped"
        keys = [_key(visit) for visit in seen]
        assert keys == sorted(keys, reverse=True), "pages went back to newer visits"

    run_scenario(scenario)


@pytest.mark.parametrize(
    "cursor",
    [
        PageCursor(BASE_TIME_MS, "id-1"),
        PageCursor(0, "x"),
        PageCursor(-1, "before-1970"),
        PageCursor(BASE_TIME_MS, "colon:inside:id"),
        PageCursor(BASE_TIME_MS, "ünïcode"),
        PageCursor(2**63 - 1, "largest-time"),
    ],
)
def test_cursor_round_trip(cursor: PageCursor) -> None:
    token = cursor.encode()

    assert PageCursor.decode(token) == cursor
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@pytest.mark.parametrize(
    "token",
    [
        "",
        "!!!",
        "a",
        "é",
        "not a cursor",
        _token(b"1700000000000"),
        _token(b"1700000000000:"),
        _token(b"yesterday:id-1"),
        _token(b":id-1"),
        _token(b"\xff\xfe:id-1"),
        _token(b"9223372036854775808:id-1"),
        _token(b"-9223372036854775809:id-1"),
    ],
)
def test_decode_rejects_garbage(token: str) -> None:
    with pytest.raises(InvalidInput, match="invalid cursor"):
        PageCursor.decode(token)


@pytest.mark.parametrize(
    ("raw", "expected_ids"),
    [(b"100000000000000000000:id-1", ["id-1"]), (b"-100000000000000000000:id-1", [])],
    ids=["far-future", "far-past"],
)
def test_out_of_range_cursor_is_handled(
    run_scenario: RunScenario, raw: bytes, expected_ids: list[str]
) -> None:
    # A time past the 64-bit integer range that SQLite and PostgreSQL store. No stored visit
    # carries it, so it is either rejected as invalid input or compared like any other time.
    token = _token(raw)

    async def scenario(backend: Backend) -> None:
        async with backend.event_store() as store:
            await store.store_batch(_entries([_visit("id-1", BASE_TIME_MS)]))
            try:
                page = await store.page("site-a", 10, PageCursor.decode(token))
            except InvalidInput:
                return

        assert [visit.id for visit in page.visits] == expected_ids
        assert page.next_cursor is None

    run_scenario(scenario)


def _visitor_visit(event_id: str, ip: str, email: str | None, received_at_ms: int) -> Visit:
    return Visit(
        id=event_id,
        site="site-a",
        received_at_ms=received_at_ms,
        ip=ip,
        timezone="Europe/Berlin",
        email=email,
    )


def test_delete_before_deletes_older_only(run_scenario: RunScenario) -> None:
    visits = [_visit(f"id-{number}", BASE_TIME_MS + number * 1_000) for number in range(10)]
    cutoff_ms = BASE_TIME_MS + 4_000

    async def scenario(backend: Backend) -> None:
        async with backend.event_store() as store:
            await store.store_batch(_entries(visits))
            deleted = await store.delete_before(cutoff_ms)
            repeated = await store.delete_before(cutoff_ms)
            stored = await _all_stored(store)
            page = await store.page("site-a", 100, None)

        assert deleted == 4
        assert repeated == 0, "a repeated retention run must delete nothing more"
        assert sorted(visit.id for visit in stored) == [f"id-{number}" for number in range(4, 10)]
        assert [visit.id for visit in page.visits] == [f"id-{n}" for n in range(9, 3, -1)]

    run_scenario(scenario)


def test_delete_before_on_empty_store(run_scenario: RunScenario) -> None:
    async def scenario(backend: Backend) -> None:
        async with backend.event_store() as store:
            deleted = await store.delete_before(BASE_TIME_MS)

        assert deleted == 0

    run_scenario(scenario)


def test_erase_by_ip_and_email(run_scenario: RunScenario) -> None:
    visits = [
        _visitor_visit("ip-1", "192.0.2.1", None, BASE_TIME_MS),
        _visitor_visit("ip-2", "192.0.2.1", "other@example.com", BASE_TIME_MS + 1),
        _visitor_visit("mail-1", "192.0.2.2", "ada@example.com", BASE_TIME_MS + 2),
        _visitor_visit("mail-2", "192.0.2.3", "ada@example.com", BASE_TIME_MS + 3),
        _visitor_visit("keep-1", "192.0.2.4", "bob@example.com", BASE_TIME_MS + 4),
        _visitor_visit("keep-2", "192.0.2.10", None, BASE_TIME_MS + 5),
    ]

    async def scenario(backend: Backend) -> None:
        async with backend.event_store() as store:
            await store.store_batch(_entries(visits))
            by_ip = await store.erase(["192.0.2.1", "h:0123456789abcdef01234567"], [])
            by_email = await store.erase([], ["ada@example.com"])
            repeated = await store.erase(["192.0.2.1"], ["ada@example.com"])
            stored = await _all_stored(store)

        assert by_ip == 2
        assert by_email == 2
        assert repeated == 0, "a repeated erasure must delete nothing more"
        assert sorted(visit.id for visit in stored) == ["keep-1", "keep-2"]

    run_scenario(scenario)


def test_erase_matches_exact_values_only(run_scenario: RunScenario) -> None:
    visits = [
        _visitor_visit("prefix", "192.0.2.10", "ada@example.com.au", BASE_TIME_MS),
        _visitor_visit("case", "192.0.2.11", "ADA@example.com", BASE_TIME_MS + 1),
        _visitor_visit("target", "192.0.2.1", None, BASE_TIME_MS + 2),
    ]

    async def scenario(backend: Backend) -> None:
        async with backend.event_store() as store:
            await store.store_batch(_entries(visits))
            deleted = await store.erase(["192.0.2.1"], ["ada@example.com"])
            nothing = await store.erase([], [])
            stored = await _all_stored(store)

        assert deleted == 1
        assert nothing == 0
        assert sorted(visit.id for visit in stored) == ["case", "prefix"]

    run_scenario(scenario)
