"""MongoEventStore on SecantusDB: retention, erasure, the write concern and the stored shape.

The EventStore contract itself runs in tests/contract with the `mongodb` backend.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager

import pymongo
import pytest
from support.mongo import SecantusServer, fresh_mongodb_database
from support.server import free_port

from footfall.backends import mongo_db
from footfall.errors import BackendUnavailable, ConfigurationError
from footfall.log.base import LogEntry
from footfall.model import Visit
from footfall.store.distributed import open_event_store
from footfall.store.mongo import MongoEventStore

BASE_TIME_MS = 1_700_000_000_000


@pytest.fixture
def database_url(mongodb_server: SecantusServer) -> Iterator[str]:
    with fresh_mongodb_database(mongodb_server) as url:
        yield url


@asynccontextmanager
async def opened_store(url: str) -> AsyncIterator[MongoEventStore]:
    store = (await open_event_store(url, "test")).store
    assert isinstance(store, MongoEventStore)
    try:
        yield store
    finally:
        await store.close()


def run(url: str, scenario: Callable[[MongoEventStore], Awaitable[None]]) -> None:
    async def main() -> None:
        async with opened_store(url) as store:
            await scenario(store)

    asyncio.run(main())


def _visit(number: int, *, ip: str = "192.0.2.1", email: str | None = None) -> Visit:
    return Visit(
        id=f"visit-{number:03d}",
        site="shop",
        received_at_ms=BASE_TIME_MS + number,
        ip=ip,
        timezone="Europe/Paris",
        email=email,
    )


def _entries(visits: list[Visit]) -> list[LogEntry]:
    return [LogEntry(f"{BASE_TIME_MS + index}-0", visit) for index, visit in enumerate(visits)]


async def _stored_ids(store: MongoEventStore) -> list[str]:
    return sorted([entry.visit.id async for entry in store.iter_entries()])


def test_delete_before_deletes_older_visits_only(database_url: str) -> None:
    visits = [_visit(number) for number in range(10)]

    async def scenario(store: MongoEventStore) -> None:
        await store.store_batch(_entries(visits))

        assert await store.delete_before(BASE_TIME_MS + 4) == 4
        assert await _stored_ids(store) == [visit.id for visit in visits[4:]]
        assert await store.delete_before(BASE_TIME_MS + 4) == 0
        assert await store.delete_before(BASE_TIME_MS) == 0
        page = await store.page("shop", 100, None)
        assert [visit.id for visit in page.visits] == [visit.id for visit in visits[:3:-1]]

    run(database_url, scenario)


def test_erase_by_ip_or_email_once(database_url: str) -> None:
    visits = [
        _visit(0, ip="192.0.2.1"),
        _visit(1, ip="192.0.2.2", email="ana@example.org"),
        _visit(2, ip="192.0.2.3", email="ana@example.org"),
        _visit(3, ip="192.0.2.3"),
        _visit(4, ip="2001:db8::4", email="bo@example.org"),
        _visit(5, ip="192.0.2.5"),
    ]

    async def scenario(store: MongoEventStore) -> None:
        await store.store_batch(_entries(visits))

        assert await store.erase(["192.0.2.1", "2001:db8::4"], ["ana@example.org"]) == 4
        assert await _stored_ids(store) == ["visit-003", "visit-005"]
        assert await store.erase(["192.0.2.1", "2001:db8::4"], ["ana@example.org"]) == 0
        assert await store.erase([], []) == 0
        assert await store.erase([], ["nobody@example.org"]) == 0
        assert await store.erase(["192.0.2.3"], []) == 1
        assert await _stored_ids(store) == ["visit-005"]

    run(database_url, scenario)


def test_erase_by_email_keeps_visits_without_email(database_url: str) -> None:
    visits = [_visit(0), _visit(1, email="ana@example.org")]

    async def scenario(store: MongoEventStore) -> None:
        await store.store_batch(_entries(visits))

        assert await store.erase([], ["ana@example.org"]) == 1
        assert await _stored_ids(store) == ["visit-000"]

    run(database_url, scenario)


def test_document_shape_and_indexes(database_url: str) -> None:
    visit = _visit(7, email="ana@example.org")

    async def scenario(store: MongoEventStore) -> None:
        await store.store_batch([LogEntry("1700000000007-0", visit)])

    run(database_url, scenario)

    with pymongo.MongoClient(database_url) as client:
        events = client.get_default_database()["events"]
        document = events.find_one({"_id": visit.id})
        indexes = events.index_information()
    assert document == {
        "_id": visit.id,
        "log_entry_id": "1700000000007-0",
        "site": "shop",
        "received_at_ms": visit.received_at_ms,
        "ip": "192.0.2.1",
        "timezone": "Europe/Paris",
        "email": "ana@example.org",
    }
    assert set(indexes) == {"_id_", "site_time", "received_at", "ip", "email"}
    assert indexes["site_time"]["key"] == [("site", 1), ("received_at_ms", -1), ("_id", -1)]


def test_write_concern_defaults_to_journaled_majority(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> tuple[str, dict[str, object]]:
        with caplog.at_level(logging.INFO, logger="footfall"):
            opened = await open_event_store(database_url, "test")
        store = opened.store
        assert isinstance(store, MongoEventStore)
        write_concern = store._events.write_concern.document
        await store.close()
        return opened.description, write_concern

    description, write_concern = asyncio.run(scenario())

    assert write_concern == {"w": "majority", "j": True}
    assert "SecantusDB" in description
    assert "write concern w: majority, j: true" in description
    assert "MongoDB 8" in caplog.text
    assert "weaker than" not in caplog.text


def test_write_concern_from_url_wins_and_warns(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> dict[str, object]:
        with caplog.at_level(logging.INFO, logger="footfall"):
            store = (await open_event_store(f"{database_url}&w=1", "test")).store
        assert isinstance(store, MongoEventStore)
        write_concern = store._events.write_concern.document
        await store.close()
        return write_concern

    assert asyncio.run(scenario()) == {"w": 1, "j": True}
    assert "weaker than {w: 'majority', j: true}" in caplog.text


def test_unreachable_server_is_backend_unavailable() -> None:
    url = f"mongodb://127.0.0.1:{free_port()}/footfall?serverSelectionTimeoutMS=300"

    with pytest.raises(BackendUnavailable, match="cannot connect to MongoDB"):
        asyncio.run(open_event_store(url, "test"))


def test_store_after_server_loss_is_backend_unavailable(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    server = SecantusServer(tmp_path_factory.mktemp("lost") / "secantusd.log").start()
    url = f"{server.url('footfall')}&serverSelectionTimeoutMS=500"

    async def scenario() -> None:
        async with opened_store(url) as store:
            await store.store_batch(_entries([_visit(1)]))
            server.stop()
            with pytest.raises(BackendUnavailable, match="MongoDB unavailable"):
                await store.store_batch(_entries([_visit(2)]))
            with pytest.raises(BackendUnavailable, match="MongoDB unavailable"):
                await store.page("shop", 10, None)

    try:
        asyncio.run(scenario())
    finally:
        server.stop()


@pytest.mark.parametrize(
    "url",
    ["mongodb:///footfall", "mongodb://127.0.0.1:port/footfall", "mongodb://127.0.0.1/foot$ball"],
)
def test_invalid_url_is_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid --database-url"):
        mongo_db.connect(url)
