"""Backends for the contract suites: every contract test runs once per entry of BACKENDS.

A backend factory returns an async context manager that prepares an empty backend and
yields a Backend. A Backend opens its log, event store and stats store on demand, and each
part can be opened again to model a process restart. Another backend needs one more factory
here.

`distributed` needs the Redis and PostgreSQL servers of `support.services`, and fails (not
skips) when they are down. `scripts/services` starts them. `mongodb` is the distributed
deployment with its events in MongoDB: the same Redis, and the session's SecantusDB server.
Its log is the Redis log of `distributed`, so the event log suite leaves it out.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
from support.mongo import SecantusServer
from support.services import fresh_distributed_backends

from footfall.backends.redis_client import connect
from footfall.backends.sqlite_db import SqliteDatabase
from footfall.log.base import EventLog
from footfall.log.redis import RedisEventLog
from footfall.log.sqlite import SqliteEventLog
from footfall.stats.base import StatsStore
from footfall.stats.redis import RedisStatsStore
from footfall.stats.sqlite import SqliteStatsStore
from footfall.store.base import EventStore
from footfall.store.distributed import open_event_store
from footfall.store.sqlite import SqliteEventStore

CLOSE_TIMEOUT_S = 10.0
"""Generous bound on closing one part. A close that takes longer is taken to hang."""
SCENARIO_TIMEOUT_S = 120.0
"""Generous bound on one scenario, so a hang fails its test instead of the whole run."""


async def close_or_fail(closing: Awaitable[None], part: str) -> None:
    """Await a part's `close()`, failing the test instead of hanging when it never returns.

    `asyncio.wait_for` would cancel the close and then wait for it to end, which hangs too
    when the close is stuck on tasks that do not end on cancellation, so this only waits.
    """
    task = asyncio.ensure_future(closing)
    done, _ = await asyncio.wait({task}, timeout=CLOSE_TIMEOUT_S)
    if not done:
        raise AssertionError(f"{part}.close() did not return within {CLOSE_TIMEOUT_S} s")
    task.result()


class Backend(Protocol):
    """One prepared backend whose parts the contract tests open and close."""

    def event_log(self) -> AbstractAsyncContextManager[EventLog]: ...

    def event_store(self) -> AbstractAsyncContextManager[EventStore]: ...

    def stats_store(self) -> AbstractAsyncContextManager[StatsStore]: ...


@dataclass
class SqliteBackend:
    """The embedded deployment: log, event store and stats store in one SQLite file."""

    path: Path

    @asynccontextmanager
    async def event_log(self) -> AsyncIterator[EventLog]:
        database = SqliteDatabase(self.path)
        log = SqliteEventLog(database)
        log.start()
        try:
            yield log
        finally:
            try:
                await close_or_fail(log.close(), "SqliteEventLog")
            finally:
                database.close()

    @asynccontextmanager
    async def event_store(self) -> AsyncIterator[EventStore]:
        database = SqliteDatabase(self.path)
        store = SqliteEventStore(database)
        try:
            yield store
        finally:
            await store.close()
            database.close()

    @asynccontextmanager
    async def stats_store(self) -> AsyncIterator[StatsStore]:
        database = SqliteDatabase(self.path)
        stats = SqliteStatsStore(database)
        try:
            yield stats
        finally:
            await stats.close()
            database.close()


@dataclass
class DistributedBackend:
    """The distributed deployment: Redis Streams log, Redis stats and PostgreSQL or MongoDB
    events, by the scheme of `database_url`."""

    redis_url: str
    database_url: str

    @asynccontextmanager
    async def event_log(self) -> AsyncIterator[EventLog]:
        client = connect(self.redis_url)
        log = RedisEventLog(client)
        await log.create_groups()
        log.start()
        try:
            yield log
        finally:
            try:
                await close_or_fail(log.close(), "RedisEventLog")
            finally:
                await client.aclose()

    @asynccontextmanager
    async def event_store(self) -> AsyncIterator[EventStore]:
        store = (await open_event_store(self.database_url, "contract test")).store
        try:
            yield store
        finally:
            await store.close()

    @asynccontextmanager
    async def stats_store(self) -> AsyncIterator[StatsStore]:
        client = connect(self.redis_url)
        stats = RedisStatsStore(client)
        try:
            yield stats
        finally:
            await stats.close()
            await client.aclose()


@asynccontextmanager
async def _sqlite_backend(path: Path) -> AsyncIterator[Backend]:
    yield SqliteBackend(path)


@asynccontextmanager
async def _distributed_backend(mongodb_server: SecantusServer | None) -> AsyncIterator[Backend]:
    with fresh_distributed_backends(mongodb_server) as urls:
        yield DistributedBackend(urls.redis_url, urls.database_url)


def sqlite_backend(
    work_dir: Path, request: pytest.FixtureRequest
) -> AbstractAsyncContextManager[Backend]:
    return _sqlite_backend(work_dir / "footfall.db")


def distributed_backend(
    work_dir: Path, request: pytest.FixtureRequest
) -> AbstractAsyncContextManager[Backend]:
    return _distributed_backend(None)


def mongodb_backend(
    work_dir: Path, request: pytest.FixtureRequest
) -> AbstractAsyncContextManager[Backend]:
    # Resolved here, in the test's thread: pytest's fixtures are not for the scenario thread.
    server: SecantusServer = request.getfixturevalue("mongodb_server")
    return _distributed_backend(server)


BackendFactory = Callable[[Path, pytest.FixtureRequest], AbstractAsyncContextManager[Backend]]

BACKENDS: dict[str, BackendFactory] = {
    "sqlite": sqlite_backend,
    "distributed": distributed_backend,
    "mongodb": mongodb_backend,
}

Scenario = Callable[[Backend], Coroutine[Any, Any, None]]


@pytest.fixture(params=list(BACKENDS))
def run_scenario(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[Scenario], None]:
    """Return a function that runs an async scenario on a fresh backend of this param.

    pytest-asyncio is not a dependency, so each scenario gets its own `asyncio.run`, in a
    daemon thread. When tasks that the scenario leaves behind never end, `asyncio.run` never
    returns, so the test fails and the thread is abandoned.
    """
    open_backend = BACKENDS[request.param]

    def run(scenario: Scenario) -> None:
        finished = threading.Event()
        errors: list[BaseException] = []
        prepared = open_backend(tmp_path, request)

        async def main() -> None:
            try:
                async with prepared as backend:
                    await scenario(backend)
            except BaseException as error:
                errors.append(error)
            finally:
                finished.set()

        def run_loop() -> None:
            try:
                asyncio.run(main())
            except BaseException as error:
                errors.append(error)
                finished.set()

        thread = threading.Thread(target=run_loop, name="contract-scenario", daemon=True)
        thread.start()
        if not finished.wait(SCENARIO_TIMEOUT_S):
            raise AssertionError(f"the scenario did not finish within {SCENARIO_TIMEOUT_S} s")
        thread.join(CLOSE_TIMEOUT_S)
        if errors:
            raise errors[0]
        if thread.is_alive():
            raise AssertionError(
                f"tasks left by the scenario still run {CLOSE_TIMEOUT_S} s after it ended"
            )

    return run
